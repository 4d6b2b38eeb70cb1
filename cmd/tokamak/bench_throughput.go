package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// throughputResult is the JSON report of `tokamak bench throughput`.
type throughputResult struct {
	Model            string  `json:"model"`
	Device           string  `json:"device"`
	InputLen         int     `json:"input_len"`
	OutputLen        int     `json:"output_len"`
	Requests         int     `json:"requests"`
	Seconds          float64 `json:"seconds"`
	RequestsPerSec   float64 `json:"requests_per_s"`
	OutputTokensPerS float64 `json:"output_tokens_per_s"`
	TotalTokensPerS  float64 `json:"total_tokens_per_s"`
	SchedulerPolicy  string  `json:"scheduler_policy"`
	MaxNumSeqs       int     `json:"max_num_seqs"`
	MaxBatchedTokens int     `json:"max_num_batched_tokens"`
	KVCacheBlocks    int     `json:"kv_cache_blocks"`
	Steps            int64   `json:"steps"`
	Preemptions      int64   `json:"preemptions"`
	// Steps split by kind: decode-only steps (one token per sequence) and
	// steps carrying prompt tokens; wall milliseconds per step (forward,
	// sampling and the engine's own work).
	DecodeSteps       int64   `json:"decode_steps"`
	DecodeMeanSeqs    float64 `json:"decode_mean_seqs"`
	DecodeStepMS      float64 `json:"decode_step_ms"`
	PrefillSteps      int64   `json:"prefill_steps"`
	PrefillMeanTokens float64 `json:"prefill_mean_tokens"`
	PrefillStepMS     float64 `json:"prefill_step_ms"`
	SampleMSPerStep   float64 `json:"sample_ms_per_step"`
	// Where a decode step's wall time goes on the host: enqueueing the
	// forward, waiting for the GPU and sampling, the engine's own Go work
	// in the step (scheduling, batch building, streaming), and the loop's
	// time between steps; the GPU idles during the last two.
	DecodeEnqueueMS float64 `json:"decode_enqueue_ms"`
	DecodeSampleMS  float64 `json:"decode_wait_sample_ms"`
	DecodeGoMS      float64 `json:"decode_go_ms"`
	DecodeGapMS     float64 `json:"decode_gap_ms"`
	// OpProfile is the device time of each op (--profile-ops), per kind of
	// step, summed over the measured run.
	OpProfile []backend.OpTime `json:"op_profile,omitempty"`
	Date      string           `json:"date"`
}

// stepStats accumulates engine steps by kind (OnStep runs on the engine's
// loop goroutine; the report reads it after the run).
type stepStats struct {
	mu                        sync.Mutex
	on                        bool
	decode, prefill           int64
	decodeSeqs, prefillTokens int64
	decodeTime, prefillTime   time.Duration
	sampleTime                time.Duration
	// decode steps: enqueue, wait+sample, Go work, gap before the step
	dEnqueue, dSample, dGo time.Duration
	dGap                   time.Duration
	lastEnd                time.Time
}

func (s *stepStats) add(st engine.StepInfo) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.lastEnd
	s.lastEnd = now
	if !s.on {
		return
	}
	s.sampleTime += st.Sample
	if st.NumTokens == st.NumSeqs {
		s.decode++
		s.decodeSeqs += int64(st.NumSeqs)
		s.decodeTime += st.Total
		s.dEnqueue += st.Forward
		s.dSample += st.Sample
		s.dGo += st.Total - st.Forward - st.Sample
		if !last.IsZero() {
			s.dGap += max(0, now.Sub(last)-st.Total)
		}
		return
	}
	s.prefill++
	s.prefillTokens += int64(st.NumTokens)
	s.prefillTime += st.Total
}

func perStep(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return d.Seconds() * 1e3 / float64(n)
}

func mean(sum, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

func benchThroughputCommand() *cli.Command {
	return &cli.Command{
		Name:  "throughput",
		Usage: "offline throughput: submit random-token prompts of fixed lengths all at once and time the engine",
		Flags: append([]cli.Flag{
			modelFlag, deviceFlag, gpuMemFlag,
			&cli.IntFlag{Name: "input-len", Value: 128, Usage: "prompt tokens per request"},
			&cli.IntFlag{Name: "output-len", Value: 128, Usage: "generated tokens per request (EOS ignored)"},
			&cli.IntFlag{Name: "num-prompts", Value: 256, Usage: "requests"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random prompts"},
			&cli.StringFlag{Name: "out", Usage: "JSON report path (empty: none)"},
			&cli.BoolFlag{Name: "profile-ops", Usage: "time every op on the device with events and print where each kind of step spends its time (implies --enforce-eager; CUDA only)"},
		}, engineFlags(1024, 16384, policyStaggered)...),
		Action: runBenchThroughput,
	}
}

func runBenchThroughput(c *cli.Context) error {
	inLen, outLen, n := c.Int("input-len"), c.Int("output-len"), c.Int("num-prompts")
	if inLen <= 0 || outLen <= 0 || n <= 0 {
		return fmt.Errorf("--input-len, --output-len and --num-prompts must be positive")
	}
	dir, err := resolveModel(c)
	if err != nil {
		return err
	}
	b, err := openBackend(c)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := model.Load(dir, b)
	if err != nil {
		return err
	}
	defer m.Close()
	if inLen+outLen > m.Config.MaxPositionEmbeddings {
		return fmt.Errorf("input %d + output %d exceed the model's context of %d", inLen, outLen, m.Config.MaxPositionEmbeddings)
	}
	ecfg, err := engineConfig(c, m, dir)
	if err != nil {
		return err
	}
	ecfg.MaxQueue = n
	prof, _ := b.(backend.OpProfiler)
	if c.Bool("profile-ops") {
		if prof == nil {
			return fmt.Errorf("--profile-ops: the %s backend cannot time ops", b.Name())
		}
		ecfg.EnforceEager = true // graphs replay whole steps: time op by op
	}
	var steps stepStats // counts only once on (warm-up steps are not counted)
	ecfg.OnStep = steps.add
	e, err := engine.New(m, ecfg)
	if err != nil {
		return err
	}
	defer e.Close()
	if err := warmUp(e); err != nil {
		return err
	}

	// Random prompts never share a prefix, so prefix caching cannot help.
	rng := rand.New(rand.NewPCG(c.Uint64("seed"), 7))
	reqs := make([]engine.Request, n)
	for i := range reqs {
		ids := make([]int32, inLen)
		for j := range ids {
			ids[j] = int32(rng.IntN(m.Config.VocabSize))
		}
		reqs[i] = engine.Request{PromptIDs: ids, MaxTokens: outLen, IgnoreEOS: true}
	}
	before := e.Stats()
	var profBefore []backend.OpTime
	if c.Bool("profile-ops") {
		if profBefore, err = prof.OpProfile(); err != nil {
			return err
		}
	}
	steps.mu.Lock()
	steps.on = true
	steps.mu.Unlock()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, req := range reqs {
		ch, err := e.Submit(context.Background(), req)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for ev := range ch {
				if ev.HasToken {
					got++
				}
				if ev.Done && ev.Err != nil {
					errs <- ev.Err
				}
			}
			if got != outLen {
				errs <- fmt.Errorf("a request generated %d tokens, want %d", got, outLen)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	after := e.Stats()
	res := throughputResult{
		Model: dir, Device: b.Name(), InputLen: inLen, OutputLen: outLen, Requests: n,
		Seconds:          elapsed,
		RequestsPerSec:   float64(n) / elapsed,
		OutputTokensPerS: float64(n*outLen) / elapsed,
		TotalTokensPerS:  float64(n*(inLen+outLen)) / elapsed,
		SchedulerPolicy:  c.String("scheduler-policy"),
		MaxNumSeqs:       ecfg.MaxSeqs,
		MaxBatchedTokens: ecfg.MaxBatchTokens,
		KVCacheBlocks:    after.KVBlocksTotal,
		Steps:            after.Steps - before.Steps,
		Preemptions:      after.Preemptions - before.Preemptions,
		Date:             time.Now().UTC().Format(time.RFC3339),
	}
	steps.mu.Lock()
	res.DecodeSteps, res.PrefillSteps = steps.decode, steps.prefill
	res.DecodeMeanSeqs = mean(steps.decodeSeqs, steps.decode)
	res.DecodeStepMS = perStep(steps.decodeTime, steps.decode)
	res.PrefillMeanTokens = mean(steps.prefillTokens, steps.prefill)
	res.PrefillStepMS = perStep(steps.prefillTime, steps.prefill)
	res.SampleMSPerStep = perStep(steps.sampleTime, steps.decode+steps.prefill)
	res.DecodeEnqueueMS = perStep(steps.dEnqueue, steps.decode)
	res.DecodeSampleMS = perStep(steps.dSample, steps.decode)
	res.DecodeGoMS = perStep(steps.dGo, steps.decode)
	res.DecodeGapMS = perStep(steps.dGap, steps.decode)
	steps.mu.Unlock()
	fmt.Fprintf(c.App.Writer, "throughput %d×(%d in, %d out) on %s: %.1f s, %.2f requests/s, %.1f output tokens/s, %.1f total tokens/s (%d steps, %d preemptions)\n",
		n, inLen, outLen, res.Device, res.Seconds, res.RequestsPerSec, res.OutputTokensPerS, res.TotalTokensPerS, res.Steps, res.Preemptions)
	fmt.Fprintf(c.App.Writer, "steps: %d decode-only (%.1f sequences, %.2f ms each), %d with prompt tokens (%.0f tokens, %.2f ms each); waiting for the GPU and sampling %.2f ms a step (the forward is queued asynchronously)\n",
		res.DecodeSteps, res.DecodeMeanSeqs, res.DecodeStepMS, res.PrefillSteps, res.PrefillMeanTokens, res.PrefillStepMS, res.SampleMSPerStep)
	fmt.Fprintf(c.App.Writer, "decode step on the host: enqueue %.2f ms, wait for the GPU and sample %.2f ms, engine Go work %.2f ms, loop gap %.2f ms\n",
		res.DecodeEnqueueMS, res.DecodeSampleMS, res.DecodeGoMS, res.DecodeGapMS)
	if c.Bool("profile-ops") {
		after, err := prof.OpProfile()
		if err != nil {
			return err
		}
		res.OpProfile = subtractProfile(after, profBefore)
		printProfile(c.App.Writer, res.OpProfile)
	}
	if path := c.String("out"); path != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// subtractProfile returns after less before (the warm-up's share), per
// kind and op, keeping after's order.
func subtractProfile(after, before []backend.OpTime) []backend.OpTime {
	type key struct{ kind, op string }
	prev := map[key]backend.OpTime{}
	for _, t := range before {
		prev[key{t.Kind, t.Op}] = t
	}
	out := make([]backend.OpTime, 0, len(after))
	for _, t := range after {
		p := prev[key{t.Kind, t.Op}]
		t.MS -= p.MS
		t.Steps -= p.Steps
		if t.Steps > 0 {
			out = append(out, t)
		}
	}
	return out
}

// printProfile writes one line per kind of step: its ops by device time
// per step, largest first, and their share of the step.
func printProfile(w io.Writer, prof []backend.OpTime) {
	for i := 0; i < len(prof); {
		j := i
		total := 0.0
		for j < len(prof) && prof[j].Kind == prof[i].Kind {
			total += prof[j].MS
			j++
		}
		steps := float64(prof[i].Steps)
		fmt.Fprintf(w, "op profile, %s steps (%d, %.2f ms of device time each):", prof[i].Kind, prof[i].Steps, total/steps)
		for _, t := range prof[i:j] {
			fmt.Fprintf(w, " %s %.2f ms (%.0f%%)", t.Op, t.MS/steps, 100*t.MS/total)
		}
		fmt.Fprintln(w)
		i = j
	}
}
