//go:build amd64

package cpu

import (
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"golang.org/x/sys/cpu"
)

// The kernels below are in matmul_amd64.s; n must be a multiple of 8.

//go:noescape
func dot1BF16(x *float32, w unsafe.Pointer, n int) float32

//go:noescape
func dot1F16(x *float32, w unsafe.Pointer, n int) float32

//go:noescape
func dot1F32(x *float32, w unsafe.Pointer, n int) float32

//go:noescape
func dot2x4BF16(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)

//go:noescape
func dot2x4F16(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)

//go:noescape
func dot2x4F32(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)

//go:noescape
func dot4x1BF16(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)

//go:noescape
func dot4x1F16(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)

//go:noescape
func dot4x1F32(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)

func cpuidECX1() uint32

// simdKernels holds the assembly kernels this CPU can run, by weight dtype;
// it is fixed at start-up. AVX2 and FMA (with OS support for the YMM
// registers) are required for all of them, F16C for F16.
var simdKernels = func() map[backend.DType]*kernel {
	m := map[backend.DType]*kernel{}
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return m
	}
	m[backend.BF16] = &kernel{name: "avx2-bf16", elemBytes: 2, dot1: dot1BF16, dot2x4: dot2x4BF16, dot4x1: dot4x1BF16, at: atBF16}
	m[backend.F32] = &kernel{name: "avx2-f32", elemBytes: 4, dot1: dot1F32, dot2x4: dot2x4F32, dot4x1: dot4x1F32, at: atF32}
	if cpuidECX1()&(1<<29) != 0 {
		m[backend.F16] = &kernel{name: "avx2-f16", elemBytes: 2, dot1: dot1F16, dot2x4: dot2x4F16, dot4x1: dot4x1F16, at: atF16}
	}
	return m
}()
