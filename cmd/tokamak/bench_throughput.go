package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine"
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
	Steps            int64   `json:"steps"`
	Preemptions      int64   `json:"preemptions"`
	Date             string  `json:"date"`
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
		}, engineFlags(8192)...),
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
	ecfg := engineConfig(c, m, dir)
	ecfg.MaxQueue = n
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
		Steps:            after.Steps - before.Steps,
		Preemptions:      after.Preemptions - before.Preemptions,
		Date:             time.Now().UTC().Format(time.RFC3339),
	}
	fmt.Fprintf(c.App.Writer, "throughput %d×(%d in, %d out) on %s: %.1f s, %.2f requests/s, %.1f output tokens/s, %.1f total tokens/s (%d steps, %d preemptions)\n",
		n, inLen, outLen, res.Device, res.Seconds, res.RequestsPerSec, res.OutputTokensPerS, res.TotalTokensPerS, res.Steps, res.Preemptions)
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
