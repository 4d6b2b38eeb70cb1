package sample

import "math/rand/v2"

// splitmix64 constants (Steele, Lea, Flood: "Fast splittable pseudorandom
// number generators", 2014).
const (
	golden = 0x9e3779b97f4a7c15
	mix1   = 0xbf58476d1ce4e5b9
	mix2   = 0x94d049bb133111eb
)

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * mix1
	z = (z ^ (z >> 27)) * mix2
	return z ^ (z >> 31)
}

// Uniform returns the draw-th uniform value of the random stream seeded
// with seed: a float32 in [0, 1) with 24 random bits. It is the
// (draw+1)-th output of SplitMix64 started at seed, top 24 bits scaled by
// 2^-24, so it depends only on (seed, draw): a request's n-th token gets
// the same value alone or in any batch, and a CUDA kernel computes the
// same value with the same three multiply-xorshift steps.
func Uniform(seed, draw uint64) float32 {
	z := mix64(seed + (draw+1)*golden)
	return float32(z>>40) * (1.0 / (1 << 24))
}

// NewSeed returns a fresh random seed for a request that did not set one;
// the engine calls it once at admission so the request's stream is fixed
// from then on.
func NewSeed() uint64 { return rand.Uint64() }

// CompletionSeed derives the seed of completion index of a request with
// n > 1 completions, so the completions differ yet each is reproducible.
// Completion 0 uses the request's seed unchanged.
func CompletionSeed(seed uint64, index int) uint64 {
	if index == 0 {
		return seed
	}
	return mix64(seed ^ mix64(uint64(index)*golden))
}
