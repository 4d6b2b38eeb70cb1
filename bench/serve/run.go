package servebench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Config is one benchmark run against a server.
type Config struct {
	// BaseURL is the API root, e.g. http://127.0.0.1:8000/v1.
	BaseURL string
	// Model is the model id to send.
	Model string
	// RatePerSecond is the mean Poisson arrival rate in requests/s;
	// +Inf (or 0) sends every request at once.
	RatePerSecond float64
	// MaxConcurrency caps requests in flight (0: no cap).
	MaxConcurrency int
	// Seed drives the arrival times.
	Seed uint64
	// Client is the HTTP client; nil uses one without timeouts.
	Client *http.Client
	// Progress, if set, is called after each request completes with the
	// number done so far.
	Progress func(done, total int)
}

// Arrivals returns n send offsets from the start: Poisson arrivals at
// rate per second (exponential gaps), or all zero when rate is +Inf or 0.
func Arrivals(n int, rate float64, seed uint64) []time.Duration {
	out := make([]time.Duration, n)
	if rate <= 0 || math.IsInf(rate, 1) {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 0xa11))
	t := 0.0
	for i := range out {
		out[i] = time.Duration(t * float64(time.Second))
		t += rng.ExpFloat64() / rate
	}
	return out
}

// Run sends reqs per cfg and returns the measurements. It stops early
// (with what it has) when ctx is done.
func Run(ctx context.Context, cfg Config, reqs []Request) (*Result, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("bench: no base URL")
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}}
	}
	arrivals := Arrivals(len(reqs), cfg.RatePerSecond, cfg.Seed)
	samples := make([]Sample, len(reqs))
	var sem chan struct{}
	if cfg.MaxConcurrency > 0 {
		sem = make(chan struct{}, cfg.MaxConcurrency)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	start := time.Now()
	for i, r := range reqs {
		if wait := time.Until(start.Add(arrivals[i])); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		if sem != nil {
			sem <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Since(start).Seconds()
			s := send(ctx, hc, cfg.BaseURL, cfg.Model, r)
			s.StartSeconds = sent
			samples[i] = s
			if sem != nil {
				<-sem
			}
			mu.Lock()
			done++
			if cfg.Progress != nil {
				cfg.Progress(done, len(reqs))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(cfg.RatePerSecond, time.Since(start).Seconds(), samples), nil
}
