// Package sample holds the sampling semantics of Tokamak: parameters,
// penalties, the CPU reference sampler and stop conditions. The fused CUDA
// sampling kernel must match what this package computes.
package sample

// Params are one request's sampling parameters, with the meanings the
// OpenAI and vLLM APIs give them.
type Params struct {
	// Temperature divides the logits; 0 means greedy (argmax).
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

// Greedy reports whether the parameters select the argmax.
func (p Params) Greedy() bool { return p.Temperature <= 0 }
