package sample

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// TokenLogprob is a token id with its log-probability.
type TokenLogprob struct {
	ID      int32
	Logprob float32
}

// Result is one sampled token. Logprob and Top are filled when the params
// ask for logprobs: they are log-softmax values of the logits after the
// penalties and before temperature and truncation (top-k/top-p/min-p), the
// model's own distribution as vLLM reports it by default; so they do not
// depend on the sampling settings. Top lists the TopLogprobs most likely
// tokens in rank order.
type Result struct {
	Token   int32
	Logprob float32
	Top     []TokenLogprob
}

// ErrNoFiniteLogits is returned when every logit is -Inf or NaN (after
// penalties), so there is nothing to sample.
var ErrNoFiniteLogits = errors.New("sample: no finite logits")

// scratch holds the per-call buffers for one vocabulary row.
type scratch struct {
	l    []float32 // penalised logits
	w    []float32 // unnormalised probabilities exp((l-max)/T)
	idx  []int32
	hist []uint64 // cutToken's bucket histogram
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) size(v int) {
	if cap(s.l) < v {
		s.l, s.w, s.idx = make([]float32, v), make([]float32, v), make([]int32, 0, v)
	}
	s.l, s.w = s.l[:v], s.w[:v]
}

// Sample draws one token from a row of logits; this is the reference the
// fused CUDA kernel matches. draw is the request's token counter: the
// race noise used is keyed by NoiseKey(p.Seed, draw). logits is not
// modified; h may be nil (no penalties). The steps, in order:
//
//  1. NaN logits count as -Inf.
//  2. Repetition penalty (Hugging Face): for every token in h (prompt or
//     output) a positive logit is divided by it, a negative one multiplied.
//  3. Frequency and presence penalties (OpenAI): a token's logit loses
//     FrequencyPenalty*count + PresencePenalty*(count>0), count being its
//     occurrences in the output.
//  4. Greedy (Temperature <= 0): the largest logit, ties to the lowest id.
//  5. With top-k, top-p or min-p: weights w = exp((l - max l) / T), as the
//     table exponential of weight (within 7e-4 for |l| / T < ~88). Tokens are ranked by
//     penalised logit, descending, ties by lower id. Top-k keeps the first
//     K ranks; top-p keeps the shortest rank prefix of those whose weight
//     reaches TopP of their total (masses summed as exact 2^-32
//     fixed-point integers, fixedOf, so both backends cut alike; a weight
//     of at most 2^-32 has mass 0); min-p
//     drops tokens with w < MinP (w of the top token is 1, so this is
//     p < MinP*p_max). The survivors are the kept tokens of weight > 0.
//     Without any of the three, the survivors are the finite logits (a
//     token of weight 0, under 2^-126 of the top one, could not win the
//     race anyway: the noise spans about 2^37).
//  6. An exponential race over the survivors (race.go): the largest
//     l*WeightScale(T) + noise wins, ties to the lowest id, so a token is
//     drawn with probability proportional to exp(l/T).
func Sample(logits []float32, p Params, h *History, draw uint64) (Result, error) {
	if len(logits) == 0 {
		return Result{}, errors.New("sample: empty logits")
	}
	if err := p.Validate(); err != nil {
		return Result{}, fmt.Errorf("sample: %w", err)
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.size(len(logits))
	l := s.l
	maxL := float32(math.Inf(-1))
	for i, x := range logits {
		if x != x {
			x = float32(math.Inf(-1))
		}
		l[i] = x
	}
	if h != nil && p.Penalised() {
		if err := applyPenalties(l, p, h); err != nil {
			return Result{}, err
		}
	}
	best := int32(-1)
	for i, x := range l {
		if x > maxL {
			maxL, best = x, int32(i)
		}
	}
	if best < 0 || math.IsInf(float64(maxL), 1) {
		// All -Inf, or a +Inf logit that leaves no finite distribution.
		if best < 0 {
			return Result{}, ErrNoFiniteLogits
		}
		return Result{}, fmt.Errorf("sample: logit of token %d is +Inf", best)
	}
	var res Result
	if p.Greedy() {
		res.Token = best
	} else {
		res.Token = drawToken(s, p, maxL, NoiseKey(p.Seed, draw))
	}
	if p.WantLogprobs() {
		logprobs(&res, s, l, maxL, p.TopLogprobs)
	}
	return res, nil
}

func applyPenalties(l []float32, p Params, h *History) error {
	ids, counts := h.Tokens()
	rp := p.RepetitionPenalty
	if rp == 0 {
		rp = 1
	}
	for i, id := range ids {
		if id < 0 || int(id) >= len(l) {
			return fmt.Errorf("sample: history token %d outside the vocabulary of %d", id, len(l))
		}
		x := l[id]
		if rp != 1 {
			if x > 0 {
				x /= rp
			} else {
				x *= rp
			}
		}
		if c := counts[i]; c > 0 {
			x -= float32(p.FrequencyPenalty*float32(c)) + p.PresencePenalty
		}
		l[id] = x
	}
	return nil
}

// ranksBefore orders token a before b in rank order: higher logit first,
// ties by lower id.
func ranksBefore(l []float32, a, b int32) bool {
	return l[a] > l[b] || (l[a] == l[b] && a < b)
}

// drawToken applies temperature, top-k, top-p and min-p and runs the race
// keyed by key.
func drawToken(s *scratch, p Params, maxL float32, key uint64) int32 {
	l, w := s.l, s.w
	ws := WeightScale(p.Temperature)
	race := newRacer(ws, key)
	topK := p.TopK > 0 && p.TopK < len(l)
	topP := p.TopP > 0 && p.TopP < 1
	if !topK && !topP && p.MinP == 0 {
		race.offerFinite(l)
		return race.best
	}
	mq := qOf(maxL, ws)
	for i, x := range l {
		w[i] = weightQ(x, mq, ws)
	}
	// The survivors of top-k and top-p are the tokens ranking at or
	// before one cut token (limit); -1 means no cut.
	limit := int32(-1)
	if topK {
		limit = cutToken(s, false, float64(p.TopK), -1)
	}
	if topP {
		if c := cutToken(s, true, float64(p.TopP), limit); c >= 0 {
			limit = c
		}
	}
	for i, e := range w {
		if e > 0 && e >= p.MinP && (limit < 0 || atOrBefore(l, int32(i), limit)) {
			race.offer(int32(i), l[i])
		}
	}
	return race.best
}

var negInf = float32(math.Inf(-1))
