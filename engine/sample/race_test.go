package sample

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

func TestLog2fAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	xs := []float32{1, 2, 0.5, 1.0078125, 1.9999999, 0x1p-126, 3.4e38, 24, 1e-10}
	for range 200000 {
		xs = append(xs, math.Float32frombits(r.Uint32N(0x7f000000)+0x00800000))
	}
	for _, x := range xs {
		got, want := float64(log2f(x)), math.Log2(float64(x))
		if err := math.Abs(got - want); err > 4e-7+math.Abs(want)*2e-7 {
			t.Fatalf("log2f(%g) = %.9g, want %.9g (error %.3g)", x, got, want, err)
		}
	}
}

// TestNoiseIsGumbel checks the noise against its definition and its
// bound: G = -1024*log2(-log2(1-V)) (a Gumbel variable up to scale and
// shift) within 0.01 key units, and G <= noiseBound, over random and edge
// hashes.
func TestNoiseIsGumbel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	hs := []uint32{0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x1fffffff, 0x20000000}
	for k := range 32 {
		hs = append(hs, 1<<k, 1<<k-1, 1<<k+1)
	}
	for range 1000000 {
		hs = append(hs, r.Uint32()>>r.UintN(32))
	}
	for _, h := range hs {
		v := (float64(h) + 0.5) / (1 << 32)
		v = math.Min(float64(float32(v)), float64(vMax))
		want := -1024 * math.Log2(-math.Log1p(-v)/math.Ln2)
		got := noiseOf(h)
		if math.Abs(float64(got)-want) > 0.01 {
			t.Fatalf("noiseOf(%#x) = %.5f, want %.5f", h, got, want)
		}
		if got > noiseBound(h) {
			t.Fatalf("noiseOf(%#x) = %.3f above its bound %.3f (leading zeros %d)", h, got, noiseBound(h), bits.LeadingZeros32(h))
		}
	}
	// Largest noise: 2^-33 gives -1024*log2(2^-33/ln2) = 33,250; smallest
	// (v = 1 - 2^-24): -1024*log2(24) = -4,695.
	if g := noiseOf(0); math.Abs(float64(g)-33250.5) > 1 {
		t.Errorf("noiseOf(0) = %v", g)
	}
	if g := noiseOf(math.MaxUint32); math.Abs(float64(g)+4695) > 1 {
		t.Errorf("noiseOf(max) = %v", g)
	}
}

// TestRaceSkipMatchesFullRace: the racer's skip never changes the winner:
// a plain argmax of every key picks the same token.
func TestRaceSkipMatchesFullRace(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	l := make([]float32, 3000)
	for trial := range 300 {
		scale := []float64{0.01, 1, 3, 30}[trial%4]
		for i := range l {
			l[i] = float32(r.NormFloat64() * scale)
			if trial%7 == 0 {
				l[i] = float32(math.Round(float64(l[i]))) // ties
			}
		}
		ws := WeightScale(float32(0.3 + r.Float64()*2))
		key := r.Uint64()
		rc := newRacer(ws, key)
		best, bestK := int32(-1), float32(math.Inf(-1))
		for i, x := range l {
			rc.offer(int32(i), x)
			if k := raceKey(x, ws, key, int32(i)); best < 0 || k > bestK {
				best, bestK = int32(i), k
			}
		}
		if rc.best != best {
			t.Fatalf("trial %d: racer picked %d, full race %d", trial, rc.best, best)
		}
		all := newRacer(ws, key)
		all.offerFinite(l)
		if all.best != best {
			t.Fatalf("trial %d: offerFinite picked %d, full race %d", trial, all.best, best)
		}
	}
}

// TestRaceFollowsTheSoftmaxInTheTail: the race draws rare tokens at their
// softmax rate (a token at 2^-12 of the top weight, among many).
func TestRaceFollowsTheSoftmaxInTheTail(t *testing.T) {
	const vocab, n = 64, 400000
	l := make([]float32, vocab)
	l[0] = 0
	for i := 1; i < vocab; i++ {
		l[i] = float32(-12 * math.Ln2) // weight 2^-12 each
	}
	p := Params{Temperature: 1, Seed: 11}
	rare := 0
	for d := range uint64(n) {
		res, err := Sample(l, p, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if res.Token != 0 {
			rare++
		}
	}
	want := float64(n) * (63.0 / 4096) / (1 + 63.0/4096)
	if sd := math.Sqrt(want); math.Abs(float64(rare)-want) > 5*sd {
		t.Errorf("rare tokens drawn %d times, want %.0f ± %.0f", rare, want, 5*sd)
	}
}

// TestZeroWeightTokensNeverWin: without truncation the race runs over
// every finite logit, which matches the weights' support because the
// noise spans less than the gap at which a weight rounds to 0.
func TestZeroWeightTokensNeverWin(t *testing.T) {
	l := make([]float32, 4096)
	for i := range l {
		l[i] = -90 // e^-90: weight 0 at T = 1 (below 2^-126)
	}
	l[17] = 0
	p := Params{Temperature: 1, Seed: 3}
	for d := range uint64(20000) {
		res, err := Sample(l, p, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if res.Token != 17 {
			t.Fatalf("draw %d: token %d of weight 0 won", d, res.Token)
		}
	}
	if w := weight(-90, 0, WeightScale(1)); w != 0 {
		t.Fatalf("weight(-90) = %g, want 0", w)
	}
}

// TestHugeLogitsTieByID: keys overflow to +Inf for logits near the float
// maximum; the lowest id among them wins, as on the GPU.
func TestHugeLogitsTieByID(t *testing.T) {
	l := []float32{1, 3e38, 2, 3e38, -3e38}
	for d := range uint64(50) {
		res, err := Sample(l, Params{Temperature: 0.5, Seed: 9}, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if res.Token != 1 {
			t.Fatalf("draw %d: token %d, want 1", d, res.Token)
		}
	}
}

// mayWinGPU is kernels/sample.cu's may_win with Race::set_thr's margin,
// op for op in float32 (the FMA as fma32): the CUDA
// scan's cheap stand-in for the exact test y + noiseBound(h) >= thr, with
// y = x * ws.
func mayWinGPU(x, ws float32, h uint32, thr float32) bool {
	thr512 := thr - (512 + float32(float32(math.Abs(float64(thr)))*0x1p-21))
	t1024, nws := thr512*(1.0/1024), -ws*(1.0/1024)
	z := fma32(x, nws, t1024)
	if !(z >= 0) { // also NaN
		z = 0
	}
	k := int64(math.Float32bits(z+12582912)) - 0x4B400000
	if k > 32 {
		k = 32
	}
	return uint64(h) <= uint64(0xffffffff)>>k
}

// fma32 is a*b+c rounded to float32: the product of two float32 values is
// exact in float64, and the sum is rounded twice (to float64, then to
// float32), which can differ from the GPU's single rounding by one ulp in
// halfway cases: far inside the margin this test checks.
func fma32(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }

// TestGPUScanTestIsConservative: whenever the exact test keeps a token
// (its key may reach thr), the GPU's cheaper test keeps it too, for keys
// from 2^10 to 2^40 (tiny temperatures make them large). Without the
// margin's |thr| * 2^-21 term it fails.
func TestGPUScanTestIsConservative(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for range 2000000 {
		e := 10 + r.IntN(31)
		// w_scale = 1024 log2(e) / T for temperatures from 2^-20 to 4
		ws := float32(1024 * math.Log2E / math.Ldexp(1+r.Float64(), -r.IntN(22)+1))
		x := float32(math.Ldexp(r.Float64()*2-1, e) / float64(ws))
		y := float32(x * ws) // rounded, as race.go's (no fused multiply-add)
		h := r.Uint32() >> r.UintN(33)
		// thr near y + the bound, where the two tests can disagree
		thr := float32(y+noiseBound(h)) + float32((r.Float64()*2-1)*math.Ldexp(1, max(e-20, 6)))
		exact := !(float32(y+noiseBound(h)) < thr)
		if exact && !mayWinGPU(x, ws, h, thr) {
			t.Fatalf("x %g ws %g h %#x thr %g: the exact test keeps the token, the GPU test drops it", x, ws, h, thr)
		}
	}
}

// add4vNotesGPU is kernels/sample.cu's Race::add4v test for one token,
// op for op in float32 (FMAs as fma32): may_win's clamp and shift as one
// saturating FMA of x * nws / 32 + t32, then h >> (32 - rn(32 z)); t32 is
// t1024 / 32 with -Inf and NaN as -FLT_MAX where -nws <= 32
// (Race::init_t32).
func add4vNotesGPU(x, ws float32, h uint32, thr float32) bool {
	thr512 := thr - (512 + float32(float32(math.Abs(float64(thr)))*0x1p-21))
	t1024, nws := thr512*(1.0/1024), -ws*(1.0/1024)
	t32 := t1024 * (1.0 / 32)
	if floor := float32(-math.MaxFloat32); -nws <= 32 && !(t32 >= floor) { // fmaxf: NaN too
		t32 = floor
	}
	z := fma32(x, nws*(1.0/32), t32)
	if !(z > 0) { // .sat: NaN and negatives to 0
		z = 0
	}
	if z > 1 {
		z = 1
	}
	j := int64(math.Float32bits(fma32(z, -32, 12582944))) - 0x4B400000
	return uint64(h)>>min(j, 32) == 0 // funnelshift_rc clamps the shift at 32
}

// TestGPUAdd4vNotesAsMayWin: for every finite or +Inf logit the kernels'
// add4v notes a token exactly when may_win does, at finite thresholds, at
// -Inf (no bound yet) and at +Inf (keys that overflowed), for
// temperatures from 2^-20 to 4; -Inf and NaN logits it may note, and the
// flushes drop them, but at temperatures from ~0.045 (ws <= 32768) it
// notes -Inf only when the hash is 0, whatever the threshold.
func TestGPUAdd4vNotesAsMayWin(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	inf := float32(math.Inf(1))
	for n := range 4000000 {
		ws := float32(1024 * math.Log2E / math.Ldexp(1+r.Float64(), -r.IntN(22)+1))
		e := r.IntN(140)
		x := float32(math.Ldexp(r.Float64()*2-1, e-10))
		h := r.Uint32() >> r.UintN(33)
		thr := float32(math.Ldexp(r.Float64()*2-1, r.IntN(50)))
		switch n % 16 {
		case 0:
			thr = -inf
		case 1:
			thr = inf
		case 2:
			x = inf
		case 3: // near the bound: x * ws + 1024 * clz(h) around thr
			thr = x*ws + float32(1024*bits.LeadingZeros32(h)) + float32(r.IntN(4096)-2048)
		}
		if got, want := add4vNotesGPU(x, ws, h, thr), mayWinGPU(x, ws, h, thr); x > -inf && got != want {
			t.Fatalf("x %g ws %g h %#x thr %g: add4v notes %v, may_win %v", x, ws, h, thr, got, want)
		}
		if ws <= 32768 && add4vNotesGPU(-inf, ws, h, thr) != (h == 0) {
			t.Fatalf("x -Inf ws %g h %#x thr %g: add4v notes %v", ws, h, thr, !(h == 0))
		}
	}
}

// fmix32Pre is kernels/sample.cu's fmix32_pre: fmix32 without its last
// xorshift.
func fmix32Pre(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	return x
}

// TestNoteHashLeadingZeros: the kernels' note_hash, fmix32Pre(x) ^ hi ^
// (hi >> 16), passes clz >= k exactly when noiseHash does, for every k
// from 0 to 32; half the keys are chosen so that the hash's high half is
// 0 (where the low halves must agree).
func TestNoteHashLeadingZeros(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for n := range 2000000 {
		key, i := r.Uint64(), int32(r.Uint32N(1<<27))
		x := uint32(i)*0x9e3779b9 + uint32(key)
		if n%2 == 0 { // the key's high half: fmix32Pre(x)'s high half over a random low half
			key = uint64(key&0xffffffff) | uint64(fmix32Pre(x)&0xffff0000|r.Uint32()&0xffff)<<32
		}
		hi := uint32(key >> 32)
		h, nh := noiseHash(key, i), fmix32Pre(x)^hi^(hi>>16)
		if n%2 == 0 && h>>16 != 0 {
			t.Fatalf("key %#x id %d: the chosen key left the hash's high half %#x", key, i, h>>16)
		}
		for k := range 33 {
			if got, want := bits.LeadingZeros32(nh) >= k, bits.LeadingZeros32(h) >= k; got != want {
				t.Fatalf("key %#x id %d k %d: note_hash %#x says %v, noiseHash %#x says %v", key, i, k, nh, got, h, want)
			}
		}
	}
}
