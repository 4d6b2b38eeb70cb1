package sample

import (
	"math"
	"math/bits"
	"slices"
)

// The draw is an exponential race (the Gumbel-max trick): every surviving
// token i gets the key
//
//	key_i = l_i * WeightScale(T) + G_i
//
// and the token with the largest key wins, ties to the lowest id. G_i is
// -1024 * log2(A_i) with A_i = -log2(1 - V_i) an exponential variable (in
// units of ln 2) and V_i a uniform value hashed from the row's NoiseKey and
// i. Since l*WeightScale(T) is 1024*log2(e^(l/T)), token i wins with
// probability e^(l_i/T) / (sum over the survivors): the softmax at
// temperature T restricted to the survivors. A race needs no maximum, no
// normaliser and no prefix sums, so a row without top-k, top-p or min-p is
// drawn in the same single pass over the logits that finds the maximum;
// that is what lets the fused CUDA sampler read a batch of rows once.
//
// Everything is float32 and integer ops each rounded on its own (no fused
// multiply-add), plus two small tables built here and uploaded to the
// device (LogTable), so both backends compute bit-identical keys.

const (
	logBits = 7
	logSize = 1 << logBits
	// log2C1..3 are 1/ln2, -1/(2 ln2), 1/(3 ln2): log2(1+r) to r^3.
	log2C1 = float32(0x1.715476p+0)
	log2C2 = float32(-0x1.715476p-1)
	log2C3 = float32(0x1.ec709ep-2)
	// seriesMax: below it, -log2(1-v) comes from its series (1-v would
	// round away v's low bits).
	seriesMax = float32(0.125)
	// vMax is the largest uniform value (1 - 2^-24): -log2(1-v) <= 24.
	vMax = float32(1 - 0x1p-24)
	// noiseSlack covers the gap between 1024*log2(ln2) = -541.5 and the
	// bound used by noiseBound, plus rounding, in key units.
	noiseSlack = 512
)

// seriesC[k] is 1/((k+1) ln2): -log2(1-v) = sum v^(k+1) * seriesC[k].
var seriesC = [6]float32{
	0x1.715476p+0, 0x1.715476p-1, 0x1.ec709ep-2, 0x1.715476p-2, 0x1.2776c6p-2, 0x1.ec709ep-3,
}

// logTab holds, for the 128 intervals [1 + j/128, 1 + (j+1)/128) of a
// mantissa, r_j = float32(1/c_j) at the interval's centre c_j and
// t_j = float32(-log2(r_j)), interleaved: log2(m) = t_j + log2(m*r_j),
// the last with |m*r_j - 1| < 2^-8 by a cubic.
var logTab = func() [2 * logSize]float32 {
	var t [2 * logSize]float32
	for j := range logSize {
		c := 1 + (float64(j)+0.5)/logSize
		r := float32(1 / c)
		t[2*j] = r
		t[2*j+1] = float32(-math.Log2(float64(r)))
	}
	return t
}()

// LogTable returns a copy of the race's logarithm table (r_j, t_j pairs),
// for a device sampler to upload.
func LogTable() []float32 { return slices.Clone(logTab[:]) }

// log2f is log2(x) for a normal positive float32 x, within ~2e-7 absolute.
func log2f(x float32) float32 {
	b := math.Float32bits(x)
	e := float32(int32(b>>23) - 127)
	j := (b >> (23 - logBits)) & (logSize - 1)
	m := math.Float32frombits(b&0x7fffff | 0x3f800000)
	r := float32(m*logTab[2*j]) - 1
	p := float32(r * float32(log2C1+float32(r*float32(log2C2+float32(r*log2C3)))))
	return float32(e+logTab[2*j+1]) + p
}

// NoiseKey returns the 64-bit key of a row's race noise for the draw-th
// token of the stream seeded with seed (SplitMix64's (draw+1)-th output).
func NoiseKey(seed, draw uint64) uint64 { return mix64(seed + (draw+1)*golden) }

// fmix32 is a 32-bit finaliser (xorshift-multiply, constants from
// C. Wellons' hash-prospector "lowbias32").
func fmix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// noiseHash is token i's 32 random bits under key: one finaliser round
// over a Weyl sequence started at the key's low half, xored with its high
// half. (One round, not two: integer ops run at half the float rate on the
// GPU, and the hash of every token is most of the sampler's arithmetic.)
func noiseHash(key uint64, i int32) uint32 {
	return fmix32(uint32(i)*0x9e3779b9+uint32(key)) ^ uint32(key>>32)
}

// noiseOf maps 32 random bits to the race noise G = -1024*log2(A),
// A = -log2(1-V), V = (h + 1/2) * 2^-32 (as float32, at most vMax).
func noiseOf(h uint32) float32 {
	v := float32(float32(h)+0.5) * 0x1p-32
	v = min(v, vMax)
	var a float32
	if v < seriesMax {
		s := seriesC[5]
		for k := 4; k >= 0; k-- {
			s = seriesC[k] + float32(v*s)
		}
		a = float32(v * s)
	} else {
		a = -log2f(1 - v)
	}
	return float32(-1024 * log2f(a))
}

// noiseBound is an upper bound of noiseOf(h) from h's leading zeros c:
// V >= 2^(-1-c) and A >= V/ln2 give G <= 1024*c + 482.5. A token whose
// l*WeightScale(T) + noiseBound rounds below the best key so far cannot
// win, so its logarithms need not be computed (same result, far less work:
// the sampler's fast path, on both backends).
func noiseBound(h uint32) float32 {
	return float32(1024*bits.LeadingZeros32(h) + noiseSlack)
}

// raceKey is token i's key: l*ws + noise, each op rounded.
func raceKey(x, ws float32, key uint64, i int32) float32 {
	return float32(x*ws) + noiseOf(noiseHash(key, i))
}

// racer keeps a race's running winner over tokens offered in ascending id
// order.
type racer struct {
	ws    float32
	key   uint64
	best  int32
	bestK float32
}

func newRacer(ws float32, key uint64) racer {
	return racer{ws: ws, key: key, best: -1, bestK: float32(math.Inf(-1))}
}

// offer enters token i with logit x (finite or -Inf).
func (r *racer) offer(i int32, x float32) {
	y := float32(x * r.ws)
	h := noiseHash(r.key, i)
	if r.best >= 0 && y+noiseBound(h) < r.bestK {
		return // cannot win: skip the logarithms
	}
	r.enter(i, y, h)
}

func (r *racer) enter(i int32, y float32, h uint32) {
	if k := y + noiseOf(h); r.best < 0 || k > r.bestK {
		r.best, r.bestK = i, k
	}
}

// offerFinite enters every finite logit of l (ids from 0): offer's loop,
// written out because it is the CPU sampler's hot loop.
func (r *racer) offerFinite(l []float32) {
	key, ws := r.key, r.ws
	for i, x := range l {
		if !(x > negInf) {
			continue
		}
		y := float32(x * ws)
		h := noiseHash(key, int32(i))
		if r.best >= 0 && y+noiseBound(h) < r.bestK {
			continue
		}
		r.enter(int32(i), y, h)
	}
}
