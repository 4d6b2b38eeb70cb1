package sample

import (
	"math"
	"slices"
)

// The weight of a token is a table exponential of its quantized exponent.
// With p = l * WeightScale(T), a float32 product rounded on its own,
// qOf(l) = p rounded to the nearest integer (ties to even; p clamped to
// +-2^62 first), and q = qOf(l) - qOf(max) <= 0,
//
//	w = 2^(q>>10) * 2^((q&1023)/1024)
//
// (0 when q < -126*1024 or l = -Inf), the second factor read from a
// 1,024-entry table of float32 mantissas. So w is exp((l - max)/T) with
// the exponent rounded to a multiple of ln2/1024: a relative error under
// 7e-4 (two roundings of half a step) while |l| * WeightScale(T) < 2^17
// (|l| / T below ~88; beyond, each product's own float32 rounding, up to
// half its spacing, adds to the exponent's error), far below the logits'
// own (bf16 weights, summation order). The exponent is taken from the logit itself,
// not from its distance to the maximum, so that a token's q is known
// before the row's maximum is: the fused CUDA sampler counts the tokens of
// each q in one read of the logits and weighs the counts once it knows
// the maximum (top-p in one read). It computes the weights with the same
// float32 ops, integer ops and table (uploaded from ExpTable), so both
// backends get bit-identical weights. Weights are monotone (non-strictly)
// in the logit, and the top token's is exactly 1.
const (
	expBits  = 10
	expSize  = 1 << expBits
	weightY0 = -126 * expSize // below this q, the weight is 0
	// weightBase is WeightScale(1): 1024 * log2(e) as a float32.
	weightBase = float32(expSize * math.Log2E)
)

// expMant[j] holds the mantissa bits of float32(2^(j/1024)).
var expMant = func() [expSize]uint32 {
	var t [expSize]uint32
	for j := range t {
		t[j] = math.Float32bits(float32(math.Exp2(float64(j)/expSize))) & 0x7fffff
	}
	return t
}()

// ExpTable returns a copy of the weight exponential's mantissa table, for
// a device sampler to upload.
func ExpTable() []uint32 { return slices.Clone(expMant[:]) }

// WeightScale returns the factor that maps a logit's distance below the
// maximum to the weight exponent at temperature t (> 0): 1024*log2(e)/t,
// computed in float32 as (1/t) * weightBase.
func WeightScale(t float32) float32 {
	invT := 1 / t
	return invT * weightBase
}

// qOf is a logit's quantized exponent at ws = WeightScale(T): l * ws
// rounded to the nearest integer, ties to even, the product clamped to
// +-2^62 (logits that large tie).
func qOf(x, ws float32) int64 {
	p := float32(x * ws)
	if p > qClamp {
		p = qClamp
	} else if p < -qClamp {
		p = -qClamp
	}
	return int64(math.RoundToEven(float64(p)))
}

// qClamp bounds a scaled logit before rounding, so that q fits an int64.
const qClamp = float32(1 << 62)

// weight returns the table exponential of (x - maxL), x <= maxL, with
// ws = WeightScale(T).
func weight(x, maxL, ws float32) float32 { return weightQ(x, qOf(maxL, ws), ws) }

// weightQ is weight with the maximum's quantized exponent mq = qOf(maxL, ws).
func weightQ(x float32, mq int64, ws float32) float32 {
	if math.IsInf(float64(x), -1) {
		return 0
	}
	q := qOf(x, ws) - mq
	if q < weightY0 {
		return 0
	}
	return weightOfQ(q)
}

// weightOfQ is the weight of quantized exponent q (weightY0 <= q <= 0):
// 2^(q/1024) from the exponent q >> expBits and the table's mantissa.
func weightOfQ(q int64) float32 {
	return math.Float32frombits(uint32((q>>expBits)+127)<<23 | expMant[q&(expSize-1)])
}

// numBuckets covers every float32 in [0, 1] by its top 16 bits: exponent
// and 7 mantissa bits, so a bucket spans a weight ratio under 1.008.
const numBuckets = 0x3f80 + 1

func bucketOf(w float32) int { return int(math.Float32bits(w) >> 16) }

// atOrBefore reports whether token i ranks at or before token c.
func atOrBefore(l []float32, i, c int32) bool {
	return l[i] > l[c] || (l[i] == l[c] && i <= c)
}

// fixedOf is w in the 2^-32 fixed-point units in which top-p masses are
// summed, rounded to nearest (even), and 0 for w <= 2^-32 (q <= -32768):
// the sums are exact integers, so the CPU and the CUDA sampler find the
// same cut whatever their order of summation, and the masses that count
// span 32,768 values of q (the CUDA sampler's histogram of q).
func fixedOf(w float32) uint64 {
	if w <= 1.0/(1<<32) {
		return 0
	}
	return uint64(math.RoundToEven(float64(w) * (1 << 32)))
}

// cutToken finds the token at which a rank-order prefix of the tokens
// ranking at or before limit (every token when limit < 0) reaches a
// target: goal tokens (a top-k count), or, byMass, goal times their total
// weight, each weight counting fixedOf(w). It returns -1 when the whole
// set never reaches the target (keep it all).
//
// Because weights are monotone in the logit, a token in a higher weight
// bucket always ranks earlier; so a histogram over buckets finds the one
// bucket holding the cut, and only that bucket is sorted. Cost: two
// passes over the vocabulary plus a sort of one small bucket.
func cutToken(s *scratch, byMass bool, goal float64, limit int32) int32 {
	l, w := s.l, s.w
	if cap(s.hist) < numBuckets {
		s.hist = make([]uint64, numBuckets)
	}
	hist := s.hist[:numBuckets]
	clear(hist)
	var total uint64
	for i, e := range w {
		if limit >= 0 && !atOrBefore(l, int32(i), limit) {
			continue
		}
		v := uint64(1)
		if byMass {
			v = fixedOf(e)
		}
		hist[bucketOf(e)] += v
		total += v
	}
	target := goal
	if byMass {
		target = goal * float64(total)
	}
	var acc uint64
	b := numBuckets - 1
	for ; b >= 0; b-- {
		if float64(acc+hist[b]) >= target && hist[b] > 0 {
			break
		}
		acc += hist[b]
	}
	if b < 0 {
		return -1
	}
	members := s.idx[:0]
	for i, e := range w {
		if bucketOf(e) == b && (limit < 0 || atOrBefore(l, int32(i), limit)) {
			members = append(members, int32(i))
		}
	}
	s.idx = members
	slices.SortFunc(members, func(x, y int32) int { return rankCmp(l, x, y) })
	for _, id := range members {
		if byMass {
			acc += fixedOf(w[id])
		} else {
			acc++
		}
		if float64(acc) >= target {
			return id
		}
	}
	return members[len(members)-1]
}
