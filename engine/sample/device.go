package sample

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// Row is one sequence's sampling job in a batch: its parameters, its
// penalty history (may be nil) and its draw counter (the index of the
// token being sampled in that request's stream).
type Row struct {
	Params  Params
	History *History
	Draw    uint64
}

// DeviceSampler is implemented by a backend that samples on the device
// (the fused CUDA kernel), so logits never leave it. logits is float32
// [len(rows), vocab]; result i is row i's token, with the semantics of
// Sample. The engine uses it when the backend provides it and falls back
// to downloading the logits and calling SampleRows.
type DeviceSampler interface {
	SampleBatch(logits backend.Tensor, rows []Row) ([]Result, error)
}

// SampleRows samples every row of a host logits matrix [len(rows), vocab]
// with Sample, rows in parallel. Each row's result depends only on that
// row, so batching never changes a token.
func SampleRows(logits []float32, vocab int, rows []Row) ([]Result, error) {
	if vocab <= 0 || len(logits) != vocab*len(rows) {
		return nil, fmt.Errorf("sample rows: %d logits for %d rows of vocab %d", len(logits), len(rows), vocab)
	}
	out := make([]Result, len(rows))
	errs := make([]error, len(rows))
	workers := min(runtime.GOMAXPROCS(0), len(rows))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rows); i += workers {
				r := rows[i]
				out[i], errs[i] = Sample(logits[i*vocab:(i+1)*vocab], r.Params, r.History, r.Draw)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
	}
	return out, nil
}
