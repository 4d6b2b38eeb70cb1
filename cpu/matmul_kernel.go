package cpu

import (
	"math"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// kernel is the set of dot-product routines MatMul uses for one weight
// format. Weight rows are read in their stored format through an
// unsafe.Pointer to the row's first element; x rows are float32.
type kernel struct {
	name      string
	elemBytes uintptr
	// dot1 returns x[0:n]·w[0:n]; n is a multiple of 8.
	dot1 func(x *float32, w unsafe.Pointer, n int) float32
	// dot2x4 writes out[j] = x_j·w_0 and out[4+j] = x_j·w_1 over the first
	// n columns (a multiple of 8), for the four x rows x_j starting at x
	// with xstride bytes between them and the two weight rows starting at
	// w, wstride bytes apart.
	dot2x4 func(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32)
	// dot4x1 writes out[q] = x·w_q over the first n columns (a multiple of
	// 8) for the four weight rows w_q starting at w, wstride bytes apart,
	// with the arithmetic dot2x4 uses for each (row, token) pair.
	dot4x1 func(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32)
	// at returns element c of the weight row at w (for column tails).
	at func(w unsafe.Pointer, c int) float32
}

// kernelFor returns the fastest kernel for unquantized weights of dtype dt,
// or nil if the dtype has none.
func kernelFor(dt backend.DType) *kernel {
	if k := simdKernels[dt]; k != nil {
		return k
	}
	return goKernels[dt]
}

// goKernels are the portable kernels: the fallback on CPUs without AVX2/FMA
// and on other architectures, and the reference the assembly is tested
// against.
var goKernels = map[backend.DType]*kernel{
	backend.BF16: {name: "go-bf16", elemBytes: 2, dot1: goDot1BF16, dot2x4: goDot2x4(goDot1BF16), dot4x1: goDot4x1(goDot1BF16), at: atBF16},
	backend.F16:  {name: "go-f16", elemBytes: 2, dot1: goDot1F16, dot2x4: goDot2x4(goDot1F16), dot4x1: goDot4x1(goDot1F16), at: atF16},
	backend.F32:  {name: "go-f32", elemBytes: 4, dot1: goDot1F32, dot2x4: goDot2x4(goDot1F32), dot4x1: goDot4x1(goDot1F32), at: atF32},
}

func atBF16(w unsafe.Pointer, c int) float32 {
	return math.Float32frombits(uint32(*(*uint16)(unsafe.Add(w, 2*c))) << 16)
}

func atF16(w unsafe.Pointer, c int) float32 {
	return weights.F16ToF32(*(*uint16)(unsafe.Add(w, 2*c)))
}

func atF32(w unsafe.Pointer, c int) float32 { return *(*float32)(unsafe.Add(w, 4*c)) }

func goDot1BF16(x *float32, w unsafe.Pointer, n int) float32 {
	xs, ws := unsafe.Slice(x, n), unsafe.Slice((*uint16)(w), n)
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += xs[i] * math.Float32frombits(uint32(ws[i])<<16)
		s1 += xs[i+1] * math.Float32frombits(uint32(ws[i+1])<<16)
		s2 += xs[i+2] * math.Float32frombits(uint32(ws[i+2])<<16)
		s3 += xs[i+3] * math.Float32frombits(uint32(ws[i+3])<<16)
	}
	for ; i < n; i++ {
		s0 += xs[i] * math.Float32frombits(uint32(ws[i])<<16)
	}
	return (s0 + s1) + (s2 + s3)
}

func goDot1F16(x *float32, w unsafe.Pointer, n int) float32 {
	xs, ws := unsafe.Slice(x, n), unsafe.Slice((*uint16)(w), n)
	var s0, s1 float32
	i := 0
	for ; i+2 <= n; i += 2 {
		s0 += xs[i] * weights.F16ToF32(ws[i])
		s1 += xs[i+1] * weights.F16ToF32(ws[i+1])
	}
	for ; i < n; i++ {
		s0 += xs[i] * weights.F16ToF32(ws[i])
	}
	return s0 + s1
}

func goDot1F32(x *float32, w unsafe.Pointer, n int) float32 {
	return goDot(unsafe.Slice(x, n), unsafe.Slice((*float32)(w), n))
}

// goDot2x4 builds a dot2x4 from eight dot1 calls.
func goDot2x4(dot1 func(x *float32, w unsafe.Pointer, n int) float32) func(*float32, uintptr, unsafe.Pointer, uintptr, int, *[8]float32) {
	return func(x *float32, xstride uintptr, w unsafe.Pointer, wstride uintptr, n int, out *[8]float32) {
		for j := range 4 {
			xj := (*float32)(unsafe.Add(unsafe.Pointer(x), uintptr(j)*xstride))
			out[j] = dot1(xj, w, n)
			out[4+j] = dot1(xj, unsafe.Add(w, wstride), n)
		}
	}
}

// goDot4x1 builds a dot4x1 from four dot1 calls (goDot2x4's arithmetic).
func goDot4x1(dot1 func(x *float32, w unsafe.Pointer, n int) float32) func(*float32, unsafe.Pointer, uintptr, int, *[4]float32) {
	return func(x *float32, w unsafe.Pointer, wstride uintptr, n int, out *[4]float32) {
		for q := range 4 {
			out[q] = dot1(x, unsafe.Add(w, uintptr(q)*wstride), n)
		}
	}
}

// simdF32 is the assembly F32 kernel, or nil.
var simdF32 = simdKernels[backend.F32]

// dot is a float32 dot product (attention's q·k): the assembly F32 kernel
// where there is one, else goDot.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	n8 := len(a) &^ 7
	if simdF32 == nil || n8 == 0 {
		return goDot(a, b)
	}
	s := simdF32.dot1(&a[0], unsafe.Pointer(&b[0]), n8)
	for i := n8; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

// goDot is a float32 dot product with four independent accumulators.
func goDot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
