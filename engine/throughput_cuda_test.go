//go:build cuda

package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cuda"
	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// timedRunner syncs after each forward so that Forward times the GPU work,
// and times the logits download separately.
type timedRunner struct {
	m        *model.Model
	b        timedBackend
	download *time.Duration
}

type timedBackend struct {
	backend.Backend
	download *time.Duration
}

func (r *timedRunner) KVSpec(n, bs int) backend.KVCacheSpec { return r.m.KVSpec(n, bs) }
func (r *timedRunner) Backend() backend.Backend             { return r.b }
func (r *timedRunner) Forward(b *backend.Batch, c backend.KVCache) (backend.Tensor, error) {
	t, err := r.m.Forward(b, c)
	if err == nil {
		err = r.m.Backend().Sync()
	}
	return t, err
}

func (b timedBackend) Download(t backend.Tensor) ([]float32, error) {
	t0 := time.Now()
	out, err := b.Backend.Download(t)
	*b.download += time.Since(t0)
	return out, err
}

// BenchmarkThroughputLlama8B is offline throughput on the GPU: a
// random-weight BF16 checkpoint of Llama-3.1-8B's shapes, random-token
// prompts of fixed length, all requests submitted at once, greedy, EOS
// ignored. TOKAMAK_BENCH_DIR holds (or receives) the checkpoint;
// TOKAMAK_BENCH_CASES lists ISL/OSLxREQUESTS cases (default
// "128/128x1000,2048/128x200,1000/1000x200"). Run with -benchtime 1x.
func BenchmarkThroughputLlama8B(b *testing.B) {
	dir := os.Getenv("TOKAMAK_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tokamak-llama8b")
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		cfg, err := model.Preset("llama-3.1-8b")
		if err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := model.WriteRandom(dir, cfg, backend.BF16, 1); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote random checkpoint in %v", time.Since(t0))
	}
	be, err := cuda.New(cuda.Options{GPUMemoryUtilization: 0.92})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	t0 := time.Now()
	m, err := model.Load(dir, be)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.Logf("loaded %s (%.1f GB) on %s in %v", dir, float64(m.WeightBytes)/1e9, be.Name(), time.Since(t0))

	cases := os.Getenv("TOKAMAK_BENCH_CASES")
	if cases == "" {
		cases = "128/128x1000,2048/128x200,1000/1000x200"
	}
	kvBytes := int64(40) << 30
	if s := os.Getenv("TOKAMAK_BENCH_KV_GB"); s != "" {
		gb, _ := strconv.Atoi(s)
		kvBytes = int64(gb) << 30
	}
	var mu sync.Mutex
	var steps int
	var fwd, smp, total, download time.Duration
	cfg := Config{KVMemoryBytes: kvBytes, MaxSeqs: 256, MaxBatchTokens: 8192, VocabSize: m.Config.VocabSize,
		OnStep: func(s StepInfo) {
			mu.Lock()
			steps++
			fwd += s.Forward
			smp += s.Sample
			total += s.Total
			mu.Unlock()
		}}
	tr := &timedRunner{m: m, b: timedBackend{Backend: m.Backend(), download: &download}}
	e, err := New(tr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.Logf("KV pool: %d blocks of 16 tokens", e.Stats().KVBlocksTotal)
	for _, c := range strings.Split(cases, ",") {
		var isl, osl, n int
		if _, err := fmt.Sscanf(c, "%d/%dx%d", &isl, &osl, &n); err != nil {
			b.Fatalf("case %q: %v", c, err)
		}
		b.Run(fmt.Sprintf("isl=%d/osl=%d/n=%d", isl, osl, n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(isl), uint64(osl)))
			mu.Lock()
			steps, fwd, smp, total, download = 0, 0, 0, 0, 0
			mu.Unlock()
			start := time.Now()
			var wg sync.WaitGroup
			var outTokens sync.Map
			for i := 0; i < n; i++ {
				prompt := make([]int32, isl)
				for j := range prompt {
					prompt[j] = int32(r.IntN(m.Config.VocabSize))
				}
				ch, err := e.Submit(context.Background(), Request{PromptIDs: prompt, MaxTokens: osl, IgnoreEOS: true, Priority: BatchPriority})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := 0
					for ev := range ch {
						if ev.HasToken {
							k++
						}
						if ev.Done && ev.Err != nil {
							b.Error(ev.Err)
						}
					}
					outTokens.Store(i, k)
				}()
			}
			wg.Wait()
			secs := time.Since(start).Seconds()
			got := 0
			outTokens.Range(func(_, v any) bool { got += v.(int); return true })
			if got != n*osl {
				b.Errorf("generated %d tokens, want %d", got, n*osl)
			}
			mu.Lock()
			defer mu.Unlock()
			b.ReportMetric(float64(got)/secs, "out-tok/s")
			b.ReportMetric(float64(n*(isl+osl))/secs, "tok/s")
			b.ReportMetric(secs, "s")
			b.ReportMetric(float64(fwd.Milliseconds())/float64(steps), "fwd-ms/step")
			b.ReportMetric(float64(smp.Milliseconds())/float64(steps), "sample-ms/step")
			b.ReportMetric(float64(download.Milliseconds())/float64(steps), "download-ms/step")
			b.ReportMetric(float64((total-fwd-smp).Microseconds())/float64(steps), "go-µs/step")
			b.Logf("%s: %d steps, %.1f s, forward %.1f%%, sampling %.1f%%, Go %.2f%% of step time; preemptions so far %d",
				c, steps, secs, 100*fwd.Seconds()/total.Seconds(), 100*smp.Seconds()/total.Seconds(),
				100*(total-fwd-smp).Seconds()/total.Seconds(), e.Stats().Preemptions)
		})
	}
}
