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
