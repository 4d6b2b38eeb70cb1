//go:build !cuda

package cuda

import "github.com/tokamak-ai/tokamak/engine/backend"

// Available reports whether this binary was built with CUDA support.
func Available() bool { return false }

// New returns ErrNotBuilt: this binary was built without the cuda tag.
func New(Options) (backend.Backend, error) { return nil, ErrNotBuilt }
