package sample

import (
	"math/rand/v2"
	"testing"
)

// benchLogits mimics an LLM's logits over a Llama-3 vocabulary: mostly
// noise, with a few strong candidates.
func benchLogits(vocab int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	l := make([]float32, vocab)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 2)
	}
	for i := range 20 {
		l[r.IntN(vocab)] = 12 + float32(i)*0.2
	}
	return l
}

func BenchmarkSample(b *testing.B) {
	const vocab = 128256
	logits := benchLogits(vocab)
	h := NewHistory(make([]int32, 0))
	for i := range 512 {
		h.Append(int32(i * 37 % vocab))
	}
	cases := []struct {
		name string
		p    Params
		h    *History
	}{
		{"greedy", Params{}, nil},
		{"temperature", Params{Temperature: 0.8}, nil},
		{"top-k-50", Params{Temperature: 0.8, TopK: 50}, nil},
		{"top-p-0.9", Params{Temperature: 0.8, TopP: 0.9}, nil},
		{"top-p-0.9-flat", Params{Temperature: 2, TopP: 0.9}, nil},
		{"min-p-0.05", Params{Temperature: 0.8, MinP: 0.05}, nil},
		{"everything", Params{Temperature: 0.8, TopK: 100, TopP: 0.95, MinP: 0.02, RepetitionPenalty: 1.1, FrequencyPenalty: 0.2, PresencePenalty: 0.1, Logprobs: true, TopLogprobs: 5}, h},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var d uint64
			for b.Loop() {
				if _, err := Sample(logits, c.p, c.h, d); err != nil {
					b.Fatal(err)
				}
				d++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
