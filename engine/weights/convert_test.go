package weights

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

func TestF16RoundTripsEveryValue(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}

// nearestF16 is a slow reference: the nearest finite half (ties to even
// mantissa), or Inf beyond 65520.
type f16Table struct {
	vals []float64
	bits []uint16
}

func newF16Table() *f16Table {
	tb := &f16Table{}
	for h := 0; h < 0x7c00; h++ { // non-negative finite halves, ascending
		tb.vals = append(tb.vals, float64(F16ToF32(uint16(h))))
		tb.bits = append(tb.bits, uint16(h))
	}
	return tb
}

func (tb *f16Table) nearest(f float32) uint16 {
	x := math.Abs(float64(f))
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	if x >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(tb.vals, x)
	if i < len(tb.vals) && tb.vals[i] == x {
		return sign | tb.bits[i]
	}
	lo, hi := i-1, i
	if hi == len(tb.vals) {
		return sign | tb.bits[lo]
	}
	dl, dh := x-tb.vals[lo], tb.vals[hi]-x
	switch {
	case dl < dh:
		return sign | tb.bits[lo]
	case dh < dl:
		return sign | tb.bits[hi]
	case tb.bits[lo]&1 == 0:
		return sign | tb.bits[lo]
	}
	return sign | tb.bits[hi]
}

func TestF32ToF16MatchesNearestEven(t *testing.T) {
	tb := newF16Table()
	r := rand.New(rand.NewPCG(1, 2))
	cases := []float32{0, 1, -1, 65504, 65519.99, 65520, 65536, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, 6.097e-5, float32(math.Inf(1)), float32(math.Inf(-1))}
	for i := 0; i < 200000; i++ {
		// Exponents around the half range, plus halfway points.
		e := r.IntN(50) - 30
		cases = append(cases, float32(math.Ldexp(r.Float64()*2-1, e)))
		h := uint16(r.IntN(0x7bff))
		mid := (float64(F16ToF32(h)) + float64(F16ToF32(h+1))) / 2
		cases = append(cases, float32(mid))
	}
	for _, f := range cases {
		want := tb.nearest(f)
		if math.IsInf(float64(f), 0) {
			want = F32ToF16(f) // checked below
			if want&0x7fff != 0x7c00 {
				t.Fatalf("Inf -> %#04x", want)
			}
		}
		if got := F32ToF16(f); got != want {
			t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", f, got, want)
		}
	}
}

func TestF32ToBF16RoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(r.Uint32())
		got := F32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(got))) {
				t.Fatalf("NaN %#08x -> %#04x", math.Float32bits(f), got)
			}
			continue
		}
		// Reference: the two neighbouring bf16 values, pick the nearer (even on ties).
		lo := uint16(math.Float32bits(f) >> 16)
		a, b := float64(BF16ToF32(lo)), float64(BF16ToF32(lo+1))
		if math.IsInf(b, 0) { // rounding past the largest finite value: IEEE compares with 2^128
			b = math.Copysign(math.Ldexp(1, 128), b)
		}
		x := float64(f)
		want := lo
		if d1, d2 := math.Abs(x-a), math.Abs(b-x); d2 < d1 || (d2 == d1 && lo&1 == 1) {
			want = lo + 1
		}
		if got != want {
			t.Fatalf("F32ToBF16(%g) = %#04x, want %#04x", f, got, want)
		}
		if BF16ToF32(got) != f && math.Float32bits(f)&0xffff == 0 {
			t.Fatalf("exact bf16 %g not preserved", f)
		}
	}
}

func TestFP8E4M3Values(t *testing.T) {
	cases := []struct {
		bits uint8
		want float64
	}{
		{0x00, 0}, {0x38, 1}, {0xb8, -1}, {0x7e, 448}, {0xfe, -448},
		{0x08, math.Ldexp(1, -6)}, {0x01, math.Ldexp(1, -9)}, {0x07, 7 * math.Ldexp(1, -9)},
		{0x40, 2}, {0x3c, 1.5},
	}
	for _, c := range cases {
		if got := FP8E4M3ToF32(c.bits); float64(got) != c.want {
			t.Errorf("FP8E4M3ToF32(%#02x) = %g, want %g", c.bits, got, c.want)
		}
	}
	for _, nan := range []uint8{0x7f, 0xff} {
		if !math.IsNaN(float64(FP8E4M3ToF32(nan))) {
			t.Errorf("%#02x is not NaN", nan)
		}
	}
}

func TestToFloat32(t *testing.T) {
	vals := []float32{0, 1, -2.5, 3.140625, 1024}
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F16} {
		raw, err := FromFloat32(dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ToFloat32(dt, raw)
		if err != nil {
			t.Fatal(err)
		}
		for i := range vals {
			if got[i] != vals[i] {
				t.Errorf("%v: got %v, want %v", dt, got, vals)
				break
			}
		}
	}
	ints := []struct {
		dt  backend.DType
		raw []byte
	}{
		{backend.I8, []byte{0xff}},
		{backend.I32, []byte{0xff, 0xff, 0xff, 0xff}},
		{backend.I64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, c := range ints {
		got, err := ToFloat32(c.dt, c.raw)
		if err != nil || len(got) != 1 || got[0] != -1 {
			t.Errorf("%v: got %v, %v; want [-1]", c.dt, got, err)
		}
	}
	if _, err := ToFloat32(backend.BF16, []byte{1, 2, 3}); err == nil {
		t.Error("odd byte count accepted for bf16")
	}
	if _, err := ToFloat32(backend.I4, []byte{1}); err == nil {
		t.Error("i4 accepted")
	}
}

func BenchmarkBF16ToFloat32(b *testing.B) {
	raw := make([]byte, 2<<20)
	out := make([]float32, len(raw)/2)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := ToFloat32Into(out, backend.BF16, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkF16ToFloat32(b *testing.B) {
	raw := make([]byte, 2<<20)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	out := make([]float32, len(raw)/2)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := ToFloat32Into(out, backend.F16, raw); err != nil {
			b.Fatal(err)
		}
	}
}
