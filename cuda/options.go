// Package cuda is the NVIDIA GPU implementation of backend.Backend: BF16
// activations, the kernels of kernels/ (called through cgo over the single
// C header kernels/tokamak.h), cuBLASLt for prefill GEMMs, a device memory
// arena, and CUDA graphs for decode steps.
//
// The GPU code is only compiled with the build tag cuda (make build-cuda);
// without it New returns ErrNotBuilt, so the package is always importable
// and the CLI can fall back to the CPU.
package cuda

import "errors"

// ErrNotBuilt is returned by New in a binary built without the cuda tag.
var ErrNotBuilt = errors.New("cuda: this binary was built without CUDA (build with make build-cuda)")

// Options configures a CUDA backend.
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
	// GPUMemoryUtilization is the fraction (0..1] of the device's total
	// memory that the backend may hold (weights, activations, KV cache, in
	// one arena). 0 disables the arena: tensors are allocated one by one.
	GPUMemoryUtilization float64
	// BlasWorkspaceBytes is cuBLASLt's workspace; 0 means 32 MiB.
	BlasWorkspaceBytes int
	// ProfileOps times every op of eager forward passes with CUDA events
	// (backend.OpProfiler). The event between two ops also keeps them from
	// overlapping under programmatic dependent launch, so the times are of
	// the unoverlapped schedule.
	ProfileOps bool
}
