package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// fakeRunner is a model that costs nothing: it checks the batch and
// returns logits whose argmax is the next position, so only the engine's
// own Go work is measured.
type fakeRunner struct {
	fb    *fakeBackend
	vocab int
}

func (f *fakeRunner) KVSpec(numBlocks, bs int) backend.KVCacheSpec {
	return backend.KVCacheSpec{Layers: 1, NumBlocks: numBlocks, BlockSize: bs, KVHeads: 1, HeadDim: 1, DType: backend.F32}
}

func (f *fakeRunner) Backend() backend.Backend { return f.fb }

func (f *fakeRunner) Forward(b *backend.Batch, cache backend.KVCache) (backend.Tensor, error) {
	spec := cache.Spec()
	if err := b.Validate(spec.NumBlocks, spec.BlockSize); err != nil {
		return nil, err
	}
	t := &fakeTensor{shape: []int{len(b.LogitRows), f.vocab}}
	if cap(f.fb.buf) < len(b.LogitRows)*f.vocab {
		f.fb.buf = make([]float32, len(b.LogitRows)*f.vocab)
	}
	t.data = f.fb.buf[:len(b.LogitRows)*f.vocab]
	clear(t.data)
	for i, r := range b.LogitRows {
		t.data[i*f.vocab+int(b.Positions[r]+1)%f.vocab] = 1
	}
	return t, nil
}

// fakeBackend implements the few Backend methods the engine calls; the
// others are never reached (the embedded nil interface would panic).
type fakeBackend struct {
	backend.Backend
	buf []float32
}

type fakeCache struct{ spec backend.KVCacheSpec }

func (c fakeCache) Spec() backend.KVCacheSpec { return c.spec }

type fakeTensor struct {
	shape []int
	data  []float32
}

func (t *fakeTensor) DType() backend.DType { return backend.F32 }
func (t *fakeTensor) Shape() []int         { return t.shape }

func (*fakeBackend) Name() string { return "fake" }
func (*fakeBackend) NewKVCache(s backend.KVCacheSpec) (backend.KVCache, error) {
	return fakeCache{s}, nil
}
func (*fakeBackend) FreeKVCache(backend.KVCache)                  {}
func (*fakeBackend) Download(t backend.Tensor) ([]float32, error) { return t.(*fakeTensor).data, nil }
func (*fakeBackend) Free(backend.Tensor)                          {}

// BenchmarkStepOverhead measures the engine's Go time per step outside
// the forward pass and sampling (scheduling, batch building, streaming)
// with n sequences decoding, on a free fake model.
func BenchmarkStepOverhead(b *testing.B) {
	for _, n := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("running=%d", n), func(b *testing.B) {
			const maxTokens = 256
			var mu sync.Mutex
			var overhead time.Duration
			steps := 0
			cfg := Config{NumBlocks: n * 20, BlockSizeTokens: 16, MaxSeqs: n, MaxBatchTokens: 8192}
			cfg.OnStep = func(s StepInfo) {
				if s.NumSeqs == n && s.NumTokens == n {
					mu.Lock()
					overhead += s.Total - s.Forward - s.Sample
					steps++
					mu.Unlock()
				}
			}
			e, err := New(&fakeRunner{fb: &fakeBackend{}, vocab: 64}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			b.ResetTimer()
			for done := 0; done < b.N; {
				var wg sync.WaitGroup
				for i := 0; i < n; i++ {
					ch, err := e.Submit(context.Background(), Request{PromptIDs: []int32{1, 2, 3, 4, 5, 6, 7, 8}, MaxTokens: maxTokens})
					if err != nil {
						b.Fatal(err)
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range ch {
						}
					}()
				}
				wg.Wait()
				done += maxTokens
			}
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			if steps > 0 {
				b.ReportMetric(float64(overhead.Microseconds())/float64(steps), "µs/step")
				b.ReportMetric(float64(overhead.Nanoseconds())/float64(steps*n), "ns/seq-step")
			}
		})
	}
}
