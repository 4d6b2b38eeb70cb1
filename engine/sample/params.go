// Package sample holds the sampling semantics of Tokamak: parameters,
// penalties, the CPU reference sampler and stop conditions. The fused CUDA
// sampling kernel must match what this package computes.
package sample

import (
	"fmt"
	"math"
)

// Params are one request's sampling parameters, with the meanings the
// OpenAI and vLLM APIs give them.
type Params struct {
	// Temperature divides the logits; 0 (or anything below
	// GreedyTemperature) means greedy (argmax).
	Temperature float32
	// TopK keeps the K most likely tokens; 0 or negative disables it.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP; 1 (or 0) disables it.
	TopP float32
	// MinP drops tokens whose probability is below MinP times the top
	// token's; 0 disables it.
	MinP float32
	// RepetitionPenalty (>0, 1 disables) divides positive logits and
	// multiplies negative ones of every token seen in prompt or output.
	RepetitionPenalty float32
	// PresencePenalty is subtracted once from the logit of every token that
	// appeared in the output.
	PresencePenalty float32
	// FrequencyPenalty is subtracted from a token's logit once per time it
	// appeared in the output.
	FrequencyPenalty float32
	// Seed seeds the request's random stream when HasSeed is set; the n-th
	// sampled token of a request uses the n-th value of that stream, so a
	// seeded request gives the same tokens alone or in any batch.
	Seed    uint64
	HasSeed bool
	// TopLogprobs is how many most likely alternatives to report with each
	// token (0: only the chosen token's logprob when Logprobs is set).
	TopLogprobs int
	// Logprobs asks for the chosen token's log-probability.
	Logprobs bool
}

// GreedyTemperature is the temperature below which sampling is greedy
// (as in vLLM): dividing by a smaller one would overflow float32 logits.
const GreedyTemperature = 1e-5

// Greedy reports whether the parameters select the argmax.
func (p Params) Greedy() bool { return p.Temperature < GreedyTemperature }

// MaxTopLogprobs is the largest TopLogprobs a request may ask for (the
// OpenAI API's limit).
const MaxTopLogprobs = 20

// Validate checks the parameters' ranges and returns an error naming the
// first bad field in the API's spelling. Zero values mean "unset" where the
// field's doc says so (TopP 0, RepetitionPenalty 0).
func (p Params) Validate() error {
	bad := func(f float32) bool { return math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) }
	switch {
	case bad(p.Temperature) || p.Temperature < 0:
		return fmt.Errorf("temperature must be a number >= 0, got %v", p.Temperature)
	case bad(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("top_p must be in (0, 1], got %v", p.TopP)
	case bad(p.MinP) || p.MinP < 0 || p.MinP > 1:
		return fmt.Errorf("min_p must be in [0, 1], got %v", p.MinP)
	case bad(p.RepetitionPenalty) || p.RepetitionPenalty < 0:
		return fmt.Errorf("repetition_penalty must be > 0, got %v", p.RepetitionPenalty)
	case bad(p.PresencePenalty) || p.PresencePenalty < -2 || p.PresencePenalty > 2:
		return fmt.Errorf("presence_penalty must be in [-2, 2], got %v", p.PresencePenalty)
	case bad(p.FrequencyPenalty) || p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2:
		return fmt.Errorf("frequency_penalty must be in [-2, 2], got %v", p.FrequencyPenalty)
	case p.TopLogprobs < 0 || p.TopLogprobs > MaxTopLogprobs:
		return fmt.Errorf("top_logprobs must be in [0, %d], got %d", MaxTopLogprobs, p.TopLogprobs)
	}
	return nil
}

// Penalised reports whether any penalty is active.
func (p Params) Penalised() bool {
	return (p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1) || p.PresencePenalty != 0 || p.FrequencyPenalty != 0
}

// WantLogprobs reports whether the result must carry log-probabilities.
func (p Params) WantLogprobs() bool { return p.Logprobs || p.TopLogprobs > 0 }
