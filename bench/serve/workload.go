// Package servebench is the load generator behind `tokamak bench serve`:
// it sends a workload of completion requests to an OpenAI-compatible
// server at a Poisson arrival rate (or all at once), measures time to
// first token, inter-token latency, time per output token and end-to-end
// latency from the streamed responses, and reports percentiles, goodput
// under an SLO and cost per million output tokens, as JSON and as an SVG
// chart of latency against offered rate.
package servebench

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Workload describes the requests of one run.
type Workload struct {
	// Kind is "random" (prompts of random token ids, served with
	// return_token_ids; works for models without a tokenizer) or "text"
	// (prompts of synthetic English words; needs a tokenizer).
	Kind string
	// NumPrompts is the number of requests.
	NumPrompts int
	// InputLen and OutputLen are the prompt and completion lengths in
	// tokens (words for text prompts).
	InputLen, OutputLen int
	// RangeRatio, when > 0, samples each length uniformly from
	// [len×(1-RangeRatio), len×(1+RangeRatio)]; 0 keeps lengths fixed.
	RangeRatio float64
	// MinTokenID and MaxTokenID bound random prompt ids: [Min, Max).
	MinTokenID, MaxTokenID int
	// Seed makes the workload reproducible.
	Seed uint64
}

// Request is one generated request.
type Request struct {
	// PromptIDs is set for random workloads, PromptText for text ones.
	PromptIDs  []int32
	PromptText string
	// MaxTokens is the completion length asked for (ignore_eos is set, so
	// the server generates exactly this many unless the context ends).
	MaxTokens int
}

// Validate checks the workload.
func (w Workload) Validate() error {
	switch {
	case w.Kind != "random" && w.Kind != "text":
		return fmt.Errorf("workload kind %q: want random or text", w.Kind)
	case w.NumPrompts < 1:
		return fmt.Errorf("number of prompts %d < 1", w.NumPrompts)
	case w.InputLen < 1 || w.OutputLen < 1:
		return fmt.Errorf("input and output lengths must be >= 1 (got %d, %d)", w.InputLen, w.OutputLen)
	case w.RangeRatio < 0 || w.RangeRatio >= 1:
		return fmt.Errorf("range ratio %g outside [0, 1)", w.RangeRatio)
	case w.Kind == "random" && (w.MinTokenID < 0 || w.MaxTokenID <= w.MinTokenID):
		return fmt.Errorf("token id range [%d, %d) is empty", w.MinTokenID, w.MaxTokenID)
	}
	return nil
}

// Generate makes the workload's requests, deterministically from Seed.
func (w Workload) Generate() ([]Request, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(w.Seed, 0x5eed))
	length := func(n int) int {
		if w.RangeRatio == 0 {
			return n
		}
		lo := max(1, int(float64(n)*(1-w.RangeRatio)))
		hi := max(lo, int(float64(n)*(1+w.RangeRatio)))
		return lo + rng.IntN(hi-lo+1)
	}
	out := make([]Request, w.NumPrompts)
	for i := range out {
		in := length(w.InputLen)
		out[i].MaxTokens = length(w.OutputLen)
		if w.Kind == "random" {
			ids := make([]int32, in)
			for j := range ids {
				ids[j] = int32(w.MinTokenID + rng.IntN(w.MaxTokenID-w.MinTokenID))
			}
			out[i].PromptIDs = ids
			continue
		}
		words := make([]string, in)
		for j := range words {
			words[j] = vocabulary[rng.IntN(len(vocabulary))]
		}
		out[i].PromptText = strings.Join(words, " ")
	}
	return out, nil
}

// vocabulary is a small list of common English words for text prompts.
var vocabulary = strings.Fields(`the of and to in is that it was for on are as with his they at be this from have
or by one had not but what all were when we there can an your which their said if do will each about how up out them
then she many some so these would other into has more her two like him see time could no make than first been its who
now people my made over did down only way find use may water long little very after words called just where most know
get through back much before go good new write our used me man too any day same right look think also around another
came come work three word must because does part even place well such here take why things help put years different
away again off went old number great tell men say small every found still between name should home big give air line
set own under read last never us left end along while might next sound below saw something thought both few those
always looked show large often together asked house world going want school important until form food keep children
feet land side without boy once animals life enough took sometimes four head above kind began almost live page got
earth need far hand high year mother light parts country father let night following picture being study second eyes
soon times story boys since white days ever paper hard near sentence better best across during today others however
sure means knew try told young miles sun ways thing whole hear example heard several change answer room sea against
top turned learn point city play toward five using himself usually`)
