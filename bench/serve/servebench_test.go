package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
	"github.com/tokamak-ai/tokamak/server"
)

func TestArrivalsArePoissonAtTheRate(t *testing.T) {
	for _, rate := range []float64{2, 50} {
		a := Arrivals(20000, rate, 1)
		mean := a[len(a)-1].Seconds() / float64(len(a)-1)
		if math.Abs(mean*rate-1) > 0.05 {
			t.Errorf("rate %g: mean gap %.4fs, want %.4fs", rate, mean, 1/rate)
		}
	}
	for _, a := range Arrivals(10, math.Inf(1), 1) {
		if a != 0 {
			t.Fatalf("all-at-once arrivals not zero: %v", a)
		}
	}
}

func TestPercentiles(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want Percentiles
	}{
		{nil, Percentiles{}},
		{[]float64{0.010}, Percentiles{Mean: 10, P50: 10, P95: 10, P99: 10, Max: 10}},
		{[]float64{0.004, 0.001, 0.003, 0.002, 0.005}, Percentiles{Mean: 3, P50: 3, P95: 4.8, P99: 4.96, Max: 5}},
	} {
		got := percentiles(tc.xs)
		for _, pair := range [][2]float64{{got.Mean, tc.want.Mean}, {got.P50, tc.want.P50}, {got.P95, tc.want.P95}, {got.P99, tc.want.P99}, {got.Max, tc.want.Max}} {
			if math.Abs(pair[0]-pair[1]) > 1e-9 {
				t.Errorf("percentiles(%v) = %+v, want %+v", tc.xs, got, tc.want)
				break
			}
		}
	}
}

func TestWorkloadLengthsAndDeterminism(t *testing.T) {
	w := Workload{Kind: "random", NumPrompts: 200, InputLen: 100, OutputLen: 50, RangeRatio: 0.5, MinTokenID: 10, MaxTokenID: 20, Seed: 3}
	a, err := w.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := w.Generate()
	for i := range a {
		if len(a[i].PromptIDs) < 50 || len(a[i].PromptIDs) > 150 || a[i].MaxTokens < 25 || a[i].MaxTokens > 75 {
			t.Fatalf("request %d lengths %d/%d outside the range", i, len(a[i].PromptIDs), a[i].MaxTokens)
		}
		for _, id := range a[i].PromptIDs {
			if id < 10 || id >= 20 {
				t.Fatalf("token id %d outside [10, 20)", id)
			}
		}
		if len(a[i].PromptIDs) != len(b[i].PromptIDs) || a[i].PromptIDs[0] != b[i].PromptIDs[0] {
			t.Fatal("workload is not deterministic")
		}
	}
	w = Workload{Kind: "text", NumPrompts: 3, InputLen: 7, OutputLen: 4}
	c, err := w.Generate()
	if err != nil || len(bytes.Fields([]byte(c[0].PromptText))) != 7 || c[0].MaxTokens != 4 {
		t.Fatalf("text workload %+v, %v", c, err)
	}
	for _, bad := range []Workload{{Kind: "x", NumPrompts: 1, InputLen: 1, OutputLen: 1}, {Kind: "random", NumPrompts: 1, InputLen: 1, OutputLen: 1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestGoodputAndCost(t *testing.T) {
	samples := []Sample{
		{OK: true, TTFTSeconds: 0.1, E2ESeconds: 1.1, OutputTokens: 11}, // TPOT 100 ms
		{OK: true, TTFTSeconds: 0.5, E2ESeconds: 1.5, OutputTokens: 11}, // TTFT too slow
		{OK: true, TTFTSeconds: 0.1, E2ESeconds: 3.1, OutputTokens: 11}, // TPOT 300 ms
		{OK: false, Status: 429, Err: "HTTP 429"},
	}
	r := summarize(4, 2, samples)
	r.Finish(SLO{TTFTMillis: 200, TPOTMillis: 150}, 3.6)
	if r.GoodRequests != 1 || r.GoodputRPS != 0.5 || r.Failed != 1 || r.Statuses[429] != 1 {
		t.Errorf("goodput %+v", r)
	}
	// 33 tokens in 2 s = 16.5 tok/s; $3.6/h = $0.001/s: 1e6/16.5 s cost $60.6.
	if math.Abs(r.CostPerMillionOutput-1e6/16.5*0.001) > 1e-6 {
		t.Errorf("cost %v", r.CostPerMillionOutput)
	}
}

// startServer serves the llama3-gqa test model on a loopback port.
func startServer(t *testing.T) string {
	t.Helper()
	dir := shareddata.Path(t, "models", "llama3-gqa")
	b := cpu.New()
	m, err := model.Load(dir, b)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(m, engine.Config{NumBlocks: 256, MaxContextTokens: m.Config.MaxPositionEmbeddings, VocabSize: m.Config.VocabSize})
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	s.SetModel(server.NewEngineModel("tiny", e, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = e.Close()
		m.Close()
		_ = b.Close()
	})
	return "http://" + ln.Addr().String() + "/v1"
}

func TestRunMeasuresARealServer(t *testing.T) {
	url := startServer(t)
	w := Workload{Kind: "random", NumPrompts: 8, InputLen: 16, OutputLen: 8, MinTokenID: 3, MaxTokenID: 500, Seed: 1}
	reqs, err := w.Generate()
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Date: "now", Command: "test", URL: url, Model: "tiny", Workload: w}
	var progress bytes.Buffer
	for _, rate := range []float64{math.Inf(1), 100} {
		bar := NewProgress(&progress, "bench")
		res, err := Run(context.Background(), Config{BaseURL: url, Model: "tiny", RatePerSecond: rate, Seed: 1, Progress: bar.Update}, reqs)
		if err != nil {
			t.Fatal(err)
		}
		res.Finish(SLO{TTFTMillis: 60_000}, 2)
		if res.Completed != 8 || res.Failed != 0 {
			t.Fatalf("rate %g: %d completed, %d failed (%s)", rate, res.Completed, res.Failed, res.FirstError)
		}
		if res.OutputTokens != 64 || res.PromptTokens != 8*16 {
			t.Errorf("tokens: %d output, %d prompt", res.OutputTokens, res.PromptTokens)
		}
		if res.TTFT.P50 <= 0 || res.TTFT.P50 > res.TTFT.P95 || res.TTFT.P95 > res.TTFT.P99 || res.ITL.P50 <= 0 || res.GoodRequests != 8 {
			t.Errorf("latencies %+v / %+v", res.TTFT, res.ITL)
		}
		for _, s := range res.Samples() {
			if len(s.ITLSeconds) != 7 {
				t.Errorf("%d inter-token gaps, want 7", len(s.ITLSeconds))
			}
		}
		if res.CostPerMillionOutput <= 0 {
			t.Errorf("no cost")
		}
		rep.Runs = append(rep.Runs, res)
	}
	if !bytes.Contains(progress.Bytes(), []byte("8/8")) {
		t.Errorf("progress bar never reached 8/8: %q", progress.String())
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Runs) != 2 || !back.Runs[0].AllAtOnce {
		t.Fatalf("report round trip: %v %+v", err, back)
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, "test", rep.Runs); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	_ = rep.Runs[0].Text()
}
