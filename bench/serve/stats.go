package servebench

import (
	"math"
	"slices"
)

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// percentiles of xs (seconds), reported in milliseconds; linear
// interpolation between closest ranks.
func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Percentiles{Mean: 1e3 * sum / float64(len(s)), P50: 1e3 * quantile(s, 0.50), P95: 1e3 * quantile(s, 0.95),
		P99: 1e3 * quantile(s, 0.99), Max: 1e3 * s[len(s)-1]}
}

// quantile of sorted s at q in [0,1].
func quantile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
}

// Result summarises one run at one offered rate.
type Result struct {
	// OfferedRate is the requested arrival rate (requests/s); +Inf is
	// reported as 0 with AllAtOnce set.
	OfferedRate float64 `json:"offered_rate_rps"`
	AllAtOnce   bool    `json:"all_at_once"`
	// DurationSeconds is from the first send to the last completion.
	DurationSeconds float64 `json:"duration_s"`
	Requests        int     `json:"requests"`
	Completed       int     `json:"completed"`
	Failed          int     `json:"failed"`
	// Statuses counts failures by HTTP status (0: no response).
	Statuses map[int]int `json:"failed_statuses,omitempty"`
	// FirstError is one failure's message, for diagnosis.
	FirstError string `json:"first_error,omitempty"`
	// Throughputs.
	RequestsPerSecond     float64 `json:"requests_per_s"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_s"`
	TotalTokensPerSecond  float64 `json:"total_tokens_per_s"`
	PromptTokens          int     `json:"prompt_tokens"`
	OutputTokens          int     `json:"output_tokens"`
	// Latencies of completed requests.
	TTFT Percentiles `json:"ttft"`
	ITL  Percentiles `json:"itl"`
	TPOT Percentiles `json:"tpot"`
	E2E  Percentiles `json:"e2e"`
	// Goodput and cost are filled by Finish.
	GoodRequests         int     `json:"slo_good_requests"`
	GoodputRPS           float64 `json:"goodput_rps"`
	CostPerMillionOutput float64 `json:"cost_usd_per_1m_output_tokens,omitempty"`

	samples []Sample
}

func summarize(rate, duration float64, samples []Sample) *Result {
	r := &Result{OfferedRate: rate, DurationSeconds: duration, Requests: len(samples), samples: samples, Statuses: map[int]int{}}
	if rate <= 0 || math.IsInf(rate, 1) {
		r.OfferedRate, r.AllAtOnce = 0, true
	}
	var ttft, itl, tpot, e2e []float64
	for _, s := range samples {
		if !s.OK {
			r.Failed++
			r.Statuses[s.Status]++
			if r.FirstError == "" {
				r.FirstError = s.Err
			}
			continue
		}
		r.Completed++
		r.PromptTokens += s.PromptTokens
		r.OutputTokens += s.OutputTokens
		ttft = append(ttft, s.TTFTSeconds)
		itl = append(itl, s.ITLSeconds...)
		if s.OutputTokens > 1 {
			tpot = append(tpot, s.TPOTSeconds())
		}
		e2e = append(e2e, s.E2ESeconds)
	}
	if duration > 0 {
		r.RequestsPerSecond = float64(r.Completed) / duration
		r.OutputTokensPerSecond = float64(r.OutputTokens) / duration
		r.TotalTokensPerSecond = float64(r.OutputTokens+r.PromptTokens) / duration
	}
	r.TTFT, r.ITL, r.TPOT, r.E2E = percentiles(ttft), percentiles(itl), percentiles(tpot), percentiles(e2e)
	return r
}

// SLO is a service-level objective per request; zero fields are not checked.
type SLO struct {
	TTFTMillis float64 `json:"ttft_ms,omitempty"`
	TPOTMillis float64 `json:"tpot_ms,omitempty"`
	E2EMillis  float64 `json:"e2e_ms,omitempty"`
}

// Meets reports whether a completed sample meets the SLO.
func (o SLO) Meets(s Sample) bool {
	return s.OK && (o.TTFTMillis <= 0 || 1e3*s.TTFTSeconds <= o.TTFTMillis) &&
		(o.TPOTMillis <= 0 || 1e3*s.TPOTSeconds() <= o.TPOTMillis) &&
		(o.E2EMillis <= 0 || 1e3*s.E2ESeconds <= o.E2EMillis)
}

// Finish computes goodput under slo and, when gpuHourlyUSD > 0, the cost
// of a million output tokens at the run's throughput.
func (r *Result) Finish(slo SLO, gpuHourlyUSD float64) {
	r.GoodRequests = 0
	for _, s := range r.samples {
		if slo.Meets(s) {
			r.GoodRequests++
		}
	}
	if r.DurationSeconds > 0 {
		r.GoodputRPS = float64(r.GoodRequests) / r.DurationSeconds
	}
	if gpuHourlyUSD > 0 && r.OutputTokensPerSecond > 0 {
		r.CostPerMillionOutput = gpuHourlyUSD / 3600 / r.OutputTokensPerSecond * 1e6
	}
}

// Samples returns the per-request measurements.
func (r *Result) Samples() []Sample { return r.samples }
