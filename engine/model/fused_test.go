package model_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/backend"
)

// countedFusion is backend.Composed (the CPU's own ops standing in for the
// fusions) counting the fused ops the model runs.
type countedFusion struct {
	backend.Composed
	calls *int
}

func (f countedFusion) NormMatMul(out, x, norm backend.Tensor, eps float32, w *backend.Weight) error {
	*f.calls++
	return f.Composed.NormMatMul(out, x, norm, eps, w)
}

func (f countedFusion) MatMulAdd(residual, x backend.Tensor, w *backend.Weight) error {
	*f.calls++
	return f.Composed.MatMulAdd(residual, x, w)
}

// TestFusedForwardMatchesPlain steps the same sequences through a model
// whose backend offers the fused projections (up to 4 rows) and one whose
// backend does not: prompt steps and decode steps of more than 4 rows run
// the plain forward on both, smaller decode steps the fused one on the
// first, and every step's logits must agree bit for bit.
func TestFusedForwardMatchesPlain(t *testing.T) {
	const bs, blocksEach, steps = 4, 8, 4
	for _, preset := range []string{"llama-3.2-1b", "qwen2.5-0.5b", "qwen3-8b", "mistral-7b"} {
		plainB := cpu.New()
		calls := 0
		fusedB := countedFusion{Composed: backend.Composed{Backend: cpu.New(), Rows: 4}, calls: &calls}
		plain, fused := tinyRandom(t, preset, plainB), tinyRandom(t, preset, fusedB)
		vocab := plain.Config.VocabSize
		for _, n := range []int{1, 3, 4, 6} {
			t.Run(fmt.Sprintf("%s/n=%d", preset, n), func(t *testing.T) {
				spec := plain.KVSpec(n*blocksEach, bs)
				plainKV, fusedKV := newCache(t, plainB, spec), newCache(t, fusedB, spec)
				next := randomPrompts(rand.New(rand.NewPCG(uint64(n), 9)), n, vocab)
				ps, fs := newSeqs(n, blocksEach, bs), newSeqs(n, blocksEach, bs)
				for step := 0; step <= steps; step++ {
					before := calls
					want, err := plain.Forward(ps.step(next), plainKV)
					if err != nil {
						t.Fatal(err)
					}
					got, err := fused.Forward(fs.step(next), fusedKV)
					if err != nil {
						t.Fatal(err)
					}
					wh := download(t, plainB, want)
					requireSameBits(t, step, download(t, fusedB, got), wh, vocab, "fused", "plain")
					// per layer: 2 norms and 2 residual adds; and lm_head
					wantCalls := 0
					if step > 0 && n <= fusedB.Rows {
						wantCalls = 4*fused.Config.NumHiddenLayers + 1
					}
					if calls-before != wantCalls {
						t.Fatalf("step %d of %d rows: %d fused ops, want %d", step, n, calls-before, wantCalls)
					}
					next = greedyNext(wh, vocab)
				}
			})
		}
	}
}
