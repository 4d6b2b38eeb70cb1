package model_test

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

var bench struct {
	once sync.Once
	m    *model.Model
	err  error
}

// benchModel loads a random-weight Llama-3.2-1B-shaped checkpoint, written
// once per run into a temporary folder (about 2.5 GB; never committed).
func benchModel(b *testing.B) *model.Model {
	b.Helper()
	bench.once.Do(func() {
		cfg, err := model.Preset("llama-3.2-1b")
		if err != nil {
			bench.err = err
			return
		}
		dir, err := os.MkdirTemp("", "tokamak-bench-*")
		if err != nil {
			bench.err = err
			return
		}
		defer os.RemoveAll(dir)
		if err := model.WriteRandom(dir, cfg, backend.BF16, 1); err != nil {
			bench.err = err
			return
		}
		bench.m, bench.err = model.Load(dir, cpu.New())
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.m
}

// copyBandwidth measures this machine's memory copy bandwidth in bytes/s
// (read + write counted), the ceiling for a memory-bound decode step.
func copyBandwidth() float64 {
	const size = 256 << 20
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	best := 0.0
	for range 5 {
		start := time.Now()
		var wg sync.WaitGroup
		const parts = 8
		for p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				copy(dst[p*size/parts:(p+1)*size/parts], src[p*size/parts:(p+1)*size/parts])
			}()
		}
		wg.Wait()
		best = max(best, 2*size/time.Since(start).Seconds())
	}
	return best
}

// BenchmarkDecode measures single-sequence decode at a 128-token context,
// next to the bound set by reading every weight once per token at the
// measured copy bandwidth.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	s, err := m.NewSession(128 + b.N + 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	prompt := make([]int32, 128)
	for i := range prompt {
		prompt[i] = int32(i * 7)
	}
	if _, err := s.Feed(prompt, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Feed([]int32{int32(i)}, false); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	bw := copyBandwidth()
	b.ReportMetric(float64(b.N)/elapsed, "tokens/s")
	b.ReportMetric(float64(m.WeightBytes)*float64(b.N)/elapsed/1e9, "weightGB/s")
	b.ReportMetric(bw/1e9, "copyGB/s")
	b.ReportMetric(bw/float64(m.WeightBytes), "bound_tokens/s")
}

// BenchmarkPrefill measures a 64-token prompt, compute-bound on the CPU.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	prompt := make([]int32, 64)
	for i := range prompt {
		prompt[i] = int32(i * 13)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s, err := m.NewSession(len(prompt))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Feed(prompt, false); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	elapsed := time.Since(start).Seconds()
	tokens := float64(b.N * len(prompt))
	b.ReportMetric(tokens/elapsed, "tokens/s")
	b.ReportMetric(2*float64(m.Config.ParamCount())*tokens/elapsed/1e9, "GFLOP/s")
}
