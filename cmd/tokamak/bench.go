package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	servebench "github.com/tokamak-ai/tokamak/bench/serve"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "benchmarks",
		Subcommands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "load-test an OpenAI-compatible server: TTFT, inter-token latency, TPOT, e2e percentiles, goodput, cost",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:8000/v1", Usage: "server API root (/v1 is appended if missing)"},
					&cli.StringFlag{Name: "model", Usage: "model id to request (default: the first of /v1/models)"},
					&cli.StringSliceFlag{Name: "rate", Value: cli.NewStringSlice("inf"), Usage: "offered rates in requests/s (Poisson arrivals), repeatable or comma-separated; inf sends all at once"},
					&cli.IntFlag{Name: "num-prompts", Value: 100, Usage: "requests per rate"},
					&cli.StringFlag{Name: "workload", Value: "random", Usage: "random (random token-id prompts) or text (synthetic English; needs a tokenizer)"},
					&cli.IntFlag{Name: "input-len", Value: 128, Usage: "prompt length in tokens (words for text)"},
					&cli.IntFlag{Name: "output-len", Value: 128, Usage: "completion length in tokens"},
					&cli.Float64Flag{Name: "range-ratio", Value: 0, Usage: "sample lengths uniformly within ±ratio of the given ones (0: fixed)"},
					&cli.IntFlag{Name: "min-token-id", Value: 10, Usage: "smallest random prompt token id"},
					&cli.IntFlag{Name: "max-token-id", Value: 500, Usage: "random prompt token ids are below this (must not exceed the vocabulary)"},
					&cli.IntFlag{Name: "max-concurrency", Value: 0, Usage: "most requests in flight (0: no cap)"},
					&cli.IntFlag{Name: "warmup", Value: 2, Usage: "requests sent before measuring"},
					&cli.Float64Flag{Name: "slo-ttft-ms", Usage: "goodput SLO on time to first token (0: none)"},
					&cli.Float64Flag{Name: "slo-tpot-ms", Usage: "goodput SLO on time per output token (0: none)"},
					&cli.Float64Flag{Name: "slo-e2e-ms", Usage: "goodput SLO on end-to-end latency (0: none)"},
					&cli.Float64Flag{Name: "gpu-hourly-usd", Usage: "price of the server's GPUs per hour, for cost per 1M output tokens"},
					&cli.StringFlag{Name: "device", Usage: "description of the server's hardware, recorded in the report"},
					&cli.StringFlag{Name: "out", Value: "bench-serve.json", Usage: "JSON report path"},
					&cli.StringFlag{Name: "svg", Value: "bench-serve.svg", Usage: "SVG chart path (latency percentiles vs offered rate; empty: none)"},
					&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "seed of the workload and the arrivals"},
				},
				Action: runBenchServe,
			},
			benchThroughputCommand(),
		},
	}
}

// parseRates reads --rate values: numbers > 0 or "inf".
func parseRates(vals []string) ([]float64, error) {
	var out []float64
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			if strings.EqualFold(f, "inf") {
				out = append(out, math.Inf(1))
				continue
			}
			r, err := strconv.ParseFloat(f, 64)
			if err != nil || r <= 0 || math.IsNaN(r) {
				return nil, fmt.Errorf("--rate %q: want a positive number or inf", f)
			}
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--rate: no rates")
	}
	return out, nil
}

// firstModel asks the server for its first model id.
func firstModel(ctx context.Context, baseURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+"/models", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("list models: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return "", fmt.Errorf("list models: %w", err)
	}
	if len(list.Data) == 0 {
		return "", errors.New("list models: the server lists none (still loading?)")
	}
	return list.Data[0].ID, nil
}

func runBenchServe(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	baseURL := strings.TrimRight(c.String("url"), "/")
	if !strings.HasSuffix(baseURL, "/v1") {
		baseURL += "/v1"
	}
	rates, err := parseRates(c.StringSlice("rate"))
	if err != nil {
		return err
	}
	modelName := c.String("model")
	if modelName == "" {
		if modelName, err = firstModel(ctx, baseURL); err != nil {
			return err
		}
	}
	w := servebench.Workload{
		Kind: c.String("workload"), NumPrompts: c.Int("num-prompts"), InputLen: c.Int("input-len"), OutputLen: c.Int("output-len"),
		RangeRatio: c.Float64("range-ratio"), MinTokenID: c.Int("min-token-id"), MaxTokenID: c.Int("max-token-id"), Seed: c.Uint64("seed"),
	}
	// Each run (and the warm-up) gets prompts of its own seed: reusing one
	// set would let the server's prefix cache answer later runs' prefills.
	workload := func(run uint64) ([]servebench.Request, error) {
		wr := w
		wr.Seed = w.Seed + run
		return wr.Generate()
	}
	slo := servebench.SLO{TTFTMillis: c.Float64("slo-ttft-ms"), TPOTMillis: c.Float64("slo-tpot-ms"), E2EMillis: c.Float64("slo-e2e-ms")}
	rep := &servebench.Report{
		Date: time.Now().UTC().Format(time.RFC3339), Command: strings.Join(os.Args, " "), Device: c.String("device"),
		URL: baseURL, Model: modelName, Workload: w, SLO: slo, GPUHourlyUSD: c.Float64("gpu-hourly-usd"),
	}
	if n := c.Int("warmup"); n > 0 {
		reqs, err := workload(uint64(len(rates)) + 1)
		if err != nil {
			return err
		}
		warm := reqs[:min(n, len(reqs))]
		res, err := servebench.Run(ctx, servebench.Config{BaseURL: baseURL, Model: modelName, RatePerSecond: math.Inf(1)}, warm)
		if err != nil {
			return err
		}
		if res.Failed > 0 {
			return fmt.Errorf("warm-up failed: %s", res.FirstError)
		}
	}
	for i, rate := range rates {
		reqs, err := workload(uint64(i))
		if err != nil {
			return err
		}
		label := fmt.Sprintf("rate %g/s", rate)
		if math.IsInf(rate, 1) {
			label = "all at once"
		}
		bar := servebench.NewProgress(c.App.ErrWriter, label)
		res, err := servebench.Run(ctx, servebench.Config{BaseURL: baseURL, Model: modelName, RatePerSecond: rate,
			MaxConcurrency: c.Int("max-concurrency"), Seed: c.Uint64("seed"), Progress: bar.Update}, reqs)
		if err != nil {
			return err
		}
		res.Finish(slo, rep.GPUHourlyUSD)
		rep.Runs = append(rep.Runs, res)
		fmt.Fprintln(c.App.Writer, res.Text())
		if ctx.Err() != nil {
			break
		}
	}
	if path := c.String("out"); path != "" {
		if err := rep.WriteJSON(path); err != nil {
			return err
		}
		fmt.Fprintln(c.App.ErrWriter, "wrote", path)
	}
	if path := c.String("svg"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("svg: %w", err)
		}
		title := fmt.Sprintf("tokamak bench serve: %s, %s, in %d / out %d tokens", modelName, rep.Device, w.InputLen, w.OutputLen)
		if err := servebench.WriteSVG(f, title, rep.Runs); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("svg: %w", err)
		}
		fmt.Fprintln(c.App.ErrWriter, "wrote", path)
	}
	return nil
}
