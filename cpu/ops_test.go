package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

func upload32(t *testing.T, b *Backend, shape []int, v []float32) backend.Tensor {
	t.Helper()
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		bits := math.Float32bits(f)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	tt, err := b.Upload(backend.F32, shape, raw)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func randn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// TestMatMulQuantizedFormats checks every weight format against the same
// matrix computed in float64 from the dequantized values.
func TestMatMulQuantizedFormats(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	b := New()
	const rows, cols, tok = 24, 64, 3
	x := randn(r, tok*cols)
	xt := upload32(t, b, []int{tok, cols}, x)
	cases := []struct {
		name  string
		dt    backend.DType
		group int
	}{
		{"int8 per channel", backend.I8, 0},
		{"int8 group 32", backend.I8, 32},
		{"int4 group 16", backend.I4, 16},
		{"fp8 per channel", backend.FP8E4M3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			group := tc.group
			if group == 0 {
				group = cols
			}
			codes := make([]int, rows*cols)
			scales := make([]float32, rows*cols/group)
			for i := range scales {
				scales[i] = 0.01 + r.Float32()
			}
			raw := make([]byte, tc.dt.Bytes(rows*cols))
			deq := make([]float64, rows*cols)
			for i := range codes {
				s := float64(scales[(i/cols)*(cols/group)+(i%cols)/group])
				switch tc.dt {
				case backend.I8:
					c := r.IntN(255) - 127
					raw[i] = byte(int8(c))
					deq[i] = float64(c) * s
				case backend.I4:
					c := r.IntN(16) - 8
					raw[i/2] |= byte(c&0xf) << (4 * (i % 2))
					deq[i] = float64(c) * s
				case backend.FP8E4M3:
					code := byte(r.IntN(256))
					if code&0x7f == 0x7f {
						code = 0x10
					}
					raw[i] = code
					deq[i] = float64(weights.FP8E4M3ToF32(code)) * s
				}
			}
			data, err := b.Upload(tc.dt, []int{rows, cols}, raw)
			if err != nil {
				t.Fatal(err)
			}
			w := &backend.Weight{Data: data, Scales: upload32(t, b, []int{len(scales)}, scales), Rows: rows, Cols: cols, GroupSize: tc.group}
			out, _ := b.Alloc(backend.F32, tok, rows)
			if err := b.MatMul(out, xt, w); err != nil {
				t.Fatal(err)
			}
			got, _ := b.Download(out)
			for i := 0; i < tok; i++ {
				for o := 0; o < rows; o++ {
					var want float64
					for c := 0; c < cols; c++ {
						want += float64(x[i*cols+c]) * deq[o*cols+c]
					}
					if d := math.Abs(float64(got[i*rows+o]) - want); d > 1e-4*(1+math.Abs(want)) {
						t.Fatalf("out[%d,%d] = %g, want %g", i, o, got[i*rows+o], want)
					}
				}
			}
		})
	}
}

func TestFP8DecodeThroughWeights(t *testing.T) {
	cases := []struct {
		code byte
		want float32
	}{{0x00, 0}, {0x38, 1}, {0xb8, -1}, {0x7e, 448}, {0x01, 1.0 / 512}, {0x40, 2}}
	for _, tc := range cases {
		if got := weights.FP8E4M3ToF32(tc.code); got != tc.want {
			t.Errorf("weights.FP8E4M3ToF32(%#x) = %g, want %g", tc.code, got, tc.want)
		}
	}
	if !math.IsNaN(float64(weights.FP8E4M3ToF32(0x7f))) {
		t.Errorf("0x7f is not NaN")
	}
}

func TestOpsRejectForeignAndMisshapenTensors(t *testing.T) {
	b := New()
	x, _ := b.Alloc(backend.F32, 2, 8)
	w, _ := b.Alloc(backend.F32, 4)
	out, _ := b.Alloc(backend.F32, 2, 8)
	if err := b.RMSNorm(out, x, w, 1e-5); err == nil {
		t.Error("RMSNorm accepted a weight of the wrong length")
	}
	half, _ := b.Alloc(backend.F32, 2, 3)
	if err := b.SiLUMul(half, x); err == nil {
		t.Error("SiLUMul accepted an output of the wrong size")
	}
	if err := b.MatMul(out, x, &backend.Weight{Data: w, Rows: 2, Cols: 8}); err == nil {
		t.Error("MatMul accepted weight data of the wrong size")
	}
}
