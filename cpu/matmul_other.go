//go:build !amd64

package cpu

import "github.com/tokamak-ai/tokamak/engine/backend"

// simdKernels is empty where there are no assembly kernels: MatMul uses the
// pure-Go ones.
var simdKernels = map[backend.DType]*kernel{}
