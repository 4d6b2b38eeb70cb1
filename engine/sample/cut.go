package sample

import (
	"math"
	"slices"
)

// expNeg returns e^x for x <= 0 in float32, flushing results below 2^-126
// to 0 (as a GPU's fast exp does). Relative error is about 2e-7, far below
// what could move a sampled token except on an exact CDF boundary.
func expNeg(x float32) float32 {
	if x < -87.33 { // also -Inf; NaN never reaches here
		return 0
	}
	const (
		log2e = 1.4426950408889634
		ln2hi = 0.693145751953125
		ln2lo = 1.428606765330187e-06
	)
	// Every product is rounded on its own (float32(...) forbids fusing it
	// into an FMA), so the CUDA sampler, which uses round-to-nearest
	// intrinsics op for op, computes bit-identical weights.
	k := int32(float32(x*log2e) - 0.5) // round to nearest for x <= 0
	kf := float32(k)
	r := float32(x-float32(kf*ln2hi)) - float32(kf*ln2lo) // |r| <= ln2/2
	p := float32(1.0/120) + float32(r*(1.0/720))
	p = float32(1.0/24) + float32(r*p)
	p = float32(1.0/6) + float32(r*p)
	p = 0.5 + float32(r*p)
	p = 1 + float32(r*p)
	p = 1 + float32(r*p)
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// numBuckets covers every float32 in [0, 1] by its top 16 bits: exponent
// and 7 mantissa bits, so a bucket spans a weight ratio under 1.008.
const numBuckets = 0x3f80 + 1

func bucketOf(w float32) int { return int(math.Float32bits(w) >> 16) }

// atOrBefore reports whether token i ranks at or before token c.
func atOrBefore(l []float32, i, c int32) bool {
	return l[i] > l[c] || (l[i] == l[c] && i <= c)
}

// cutToken finds the token at which a rank-order prefix reaches target,
// counting each token's weight (byMass) or 1 (a top-k count), over the
// tokens ranking at or before limit (every token when limit < 0). It
// returns -1 when the whole set never reaches target (keep it all).
//
// Because weights are monotone in the logit, a token in a higher weight
// bucket always ranks earlier; so a histogram over buckets finds the one
// bucket holding the cut, and only that bucket is sorted. Cost: two
// passes over the vocabulary plus a sort of one small bucket.
func cutToken(s *scratch, byMass bool, target float64, limit int32) int32 {
	l, w := s.l, s.w
	if cap(s.hist) < numBuckets {
		s.hist = make([]float64, numBuckets)
	}
	hist := s.hist[:numBuckets]
	clear(hist)
	for i, e := range w {
		if limit >= 0 && !atOrBefore(l, int32(i), limit) {
			continue
		}
		v := 1.0
		if byMass {
			v = float64(e)
		}
		hist[bucketOf(e)] += v
	}
	var acc float64
	b := numBuckets - 1
	for ; b >= 0; b-- {
		if acc+hist[b] >= target && hist[b] > 0 {
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
			acc += float64(w[id])
		} else {
			acc++
		}
		if acc >= target {
			return id
		}
	}
	return members[len(members)-1]
}
