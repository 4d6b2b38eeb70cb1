package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

var kernelDTypes = []backend.DType{backend.BF16, backend.F16, backend.F32}

// randWeights returns n random weights of dtype dt as the bytes MatMul
// reads (finite values, F16 including subnormals).
func randWeights(r *rand.Rand, dt backend.DType, n int) []byte {
	raw := make([]byte, dt.Bytes(n))
	for i := range n {
		switch dt {
		case backend.BF16:
			u := uint16(math.Float32bits(float32(r.NormFloat64())) >> 16)
			raw[2*i], raw[2*i+1] = byte(u), byte(u>>8)
		case backend.F16:
			exp := uint16(r.IntN(20)) // 0 = subnormal, never 31 (inf/nan)
			u := uint16(r.IntN(2))<<15 | exp<<10 | uint16(r.IntN(1024))
			raw[2*i], raw[2*i+1] = byte(u), byte(u>>8)
		case backend.F32:
			bits := math.Float32bits(float32(r.NormFloat64()))
			raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		}
	}
	return raw
}

// refDot returns x·w in float64 and Σ|x_i w_i|, the scale of its rounding error.
func refDot(k *kernel, x []float32, w unsafe.Pointer, n int) (sum, mag float64) {
	for c := range n {
		p := float64(x[c]) * float64(k.at(w, c))
		sum += p
		mag += math.Abs(p)
	}
	return sum, mag
}

func closeEnough(got float32, want, mag float64) bool {
	return math.Abs(float64(got)-want) <= 1e-5*mag+1e-30
}

// kernelsUnderTest returns the Go kernel and, where this CPU has one, the
// assembly kernel for dt.
func kernelsUnderTest(t *testing.T, dt backend.DType) []*kernel {
	ks := []*kernel{goKernels[dt]}
	if k := simdKernels[dt]; k != nil {
		ks = append(ks, k)
	} else {
		t.Logf("no assembly kernel for %s on this CPU; testing the Go kernel only", dt)
	}
	return ks
}

// TestDotKernelsMatchReference runs dot1 and dot2x4 of every kernel over
// lengths around the vector widths, including 0, with NaN-poisoned outputs,
// against a float64 reference.
func TestDotKernelsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, dt := range kernelDTypes {
		for _, k := range kernelsUnderTest(t, dt) {
			for _, n := range []int{0, 8, 16, 24, 32, 40, 64, 96, 128, 136, 1024, 2048 + 8} {
				t.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(t *testing.T) {
					const pad = 8 // x rows are padded so a kernel reading past n shows up
					stride := n + pad
					x := randn(r, 4*stride)
					for j := range 4 {
						for c := n; c < stride; c++ {
							x[j*stride+c] = float32(math.NaN())
						}
					}
					raw := randWeights(r, dt, 2*(n+pad))
					w := unsafe.Pointer(&raw[0])
					ws := uintptr(n+pad) * k.elemBytes
					out := [8]float32{}
					for i := range out {
						out[i] = float32(math.NaN())
					}
					k.dot2x4(&x[0], uintptr(stride)*4, w, ws, n, &out)
					for q := range 2 {
						for j := range 4 {
							want, mag := refDot(k, x[j*stride:], unsafe.Add(w, uintptr(q)*ws), n)
							if got := out[4*q+j]; !closeEnough(got, want, mag) {
								t.Errorf("dot2x4 row %d token %d = %g, want %g", q, j, got, want)
							}
							if got := k.dot1(&x[j*stride], unsafe.Add(w, uintptr(q)*ws), n); !closeEnough(got, want, mag) {
								t.Errorf("dot1 row %d token %d = %g, want %g", q, j, got, want)
							}
						}
					}
				})
			}
		}
	}
}

// TestMatMulShapes checks MatMul over token counts, row counts and column
// counts that exercise every path of the tiling (4-token groups, leftover
// tokens, odd rows, column tails, empty shapes), with bias, for every
// unquantized weight dtype, with the output poisoned beforehand.
func TestMatMulShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	b := New()
	for _, dt := range kernelDTypes {
		for _, tok := range []int{0, 1, 3, 4, 5, 9} {
			for _, rows := range []int{1, 2, 7, 33} {
				for _, cols := range []int{0, 1, 7, 8, 9, 33, 100} {
					name := fmt.Sprintf("%s/T=%d/rows=%d/cols=%d", dt, tok, rows, cols)
					x := randn(r, tok*cols)
					bias := randn(r, rows)
					raw := randWeights(r, dt, rows*cols)
					wt, err := b.Upload(dt, []int{rows, cols}, raw)
					if err != nil {
						t.Fatal(err)
					}
					w := &backend.Weight{Data: wt, Rows: rows, Cols: cols, Bias: upload32(t, b, []int{rows}, bias)}
					out, _ := b.Alloc(backend.F32, tok, rows)
					o := out.(*Tensor).F32
					for i := range o {
						o[i] = float32(math.NaN())
					}
					if err := b.MatMul(out, upload32(t, b, []int{tok, cols}, x), w); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					k := goKernels[dt]
					for i := range tok {
						for rr := range rows {
							var want, mag float64
							if cols > 0 {
								want, mag = refDot(k, x[i*cols:], unsafe.Pointer(&raw[uintptr(rr*cols)*k.elemBytes]), cols)
							}
							want += float64(bias[rr])
							mag += math.Abs(float64(bias[rr]))
							if got := o[i*rows+rr]; !closeEnough(got, want, mag) {
								t.Errorf("%s: out[%d,%d] = %g, want %g", name, i, rr, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkDotKernel measures dot1 (one token, the decode shape: bound by
// reading the weights) and dot2x4 (four tokens, the prefill shape: bound by
// FMA throughput) on a 2048-column row block of 1 MiB-4 MiB, larger than
// L2, reporting weight bytes read per second and GFLOP/s.
func BenchmarkDotKernel(b *testing.B) {
	const cols, rows = 2048, 512
	r := rand.New(rand.NewPCG(1, 2))
	x := randn(r, 4*cols)
	for _, dt := range kernelDTypes {
		for _, k := range []*kernel{goKernels[dt], simdKernels[dt]} {
			if k == nil {
				continue
			}
			raw := randWeights(r, dt, rows*cols)
			w := unsafe.Pointer(&raw[0])
			ws := uintptr(cols) * k.elemBytes
			b.Run(k.name+"/dot1", func(b *testing.B) {
				var sink float32
				for b.Loop() {
					for rr := range rows {
						sink += k.dot1(&x[0], unsafe.Add(w, uintptr(rr)*ws), cols)
					}
				}
				report(b, float64(len(raw)), 2*rows*cols)
				_ = sink
			})
			b.Run(k.name+"/dot2x4", func(b *testing.B) {
				var out [8]float32
				for b.Loop() {
					for rr := 0; rr < rows; rr += 2 {
						k.dot2x4(&x[0], cols*4, unsafe.Add(w, uintptr(rr)*ws), ws, cols, &out)
					}
				}
				report(b, float64(len(raw)), 8*rows*cols)
			})
		}
	}
}

func report(b *testing.B, bytes float64, flops int) {
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(bytes/sec/1e9, "GB/s")
	b.ReportMetric(float64(flops)/sec/1e9, "GFLOP/s")
}

// TestMatMulTokenResultIndependentOfBatch checks that a token's MatMul
// outputs are bit for bit the same whatever the number of tokens in the
// call (the tail tokens of a step take dot4x1, whose sums are dot2x4's):
// padding a decode batch to a graph bucket must not change its logits.
func TestMatMulTokenResultIndependentOfBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	b := New()
	for _, dt := range kernelDTypes {
		for _, shape := range [][2]int{{37, 64}, {96, 100}, {7, 8}, {130, 13}} {
			rows, cols := shape[0], shape[1]
			t.Run(fmt.Sprintf("%s/%dx%d", dt, rows, cols), func(t *testing.T) {
				data, err := b.Upload(dt, []int{rows, cols}, randWeights(r, dt, rows*cols))
				if err != nil {
					t.Fatal(err)
				}
				w := &backend.Weight{Data: data, Rows: rows, Cols: cols}
				const maxT = 11
				xs := randn(r, maxT*cols)
				var ref []float32
				for n := maxT; n >= 1; n-- {
					x := &Tensor{dt: backend.F32, shape: []int{n, cols}, F32: xs[:n*cols]}
					out, _ := b.Alloc(backend.F32, n, rows)
					if err := b.MatMul(out, x, w); err != nil {
						t.Fatal(err)
					}
					got := out.(*Tensor).F32
					if ref == nil {
						ref = got
						continue
					}
					for i, v := range got {
						if math.Float32bits(v) != math.Float32bits(ref[i]) {
							t.Fatalf("T=%d: token %d row %d = %g, with T=%d it was %g", n, i/rows, i%rows, v, maxT, ref[i])
						}
					}
				}
			})
		}
	}
}
