package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/backend"
)

// composedFusion gives the CPU backend backend.FusedLinear by composing its
// own ops, so that the model's fused forward can be checked against the
// plain one on the CPU: both must give the same logits bit for bit.
type composedFusion struct {
	backend.Backend
	rows  int
	calls *int // fused ops run
}

func (f composedFusion) FusedLinearRows(*backend.Weight, bool) int { return f.rows }

func (f composedFusion) NormMatMul(out, x, norm backend.Tensor, eps float32, w *backend.Weight) error {
	*f.calls++
	tmp, err := f.Alloc(x.DType(), x.Shape()...)
	if err != nil {
		return err
	}
	defer f.Free(tmp)
	if err := f.RMSNorm(tmp, x, norm, eps); err != nil {
		return err
	}
	return f.MatMul(out, tmp, w)
}

func (f composedFusion) MatMulAdd(residual, x backend.Tensor, w *backend.Weight) error {
	*f.calls++
	prod, err := f.Alloc(residual.DType(), residual.Shape()...)
	if err != nil {
		return err
	}
	defer f.Free(prod)
	normed, err := f.Alloc(residual.DType(), residual.Shape()...)
	if err != nil {
		return err
	}
	defer f.Free(normed)
	if err := f.MatMul(prod, x, w); err != nil {
		return err
	}
	d := residual.Shape()[len(residual.Shape())-1]
	ones, err := f.Upload(backend.F32, []int{d}, onesF32(d))
	if err != nil {
		return err
	}
	defer f.Free(ones)
	return f.AddRMSNorm(normed, residual, prod, ones, 1e-6) // only its add is kept
}

func onesF32(n int) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		u := math.Float32bits(1)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
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
		fusedB := composedFusion{Backend: cpu.New(), rows: 4, calls: &calls}
		plain, fused := tinyRandom(t, preset, plainB), tinyRandom(t, preset, fusedB)
		vocab := plain.Config.VocabSize
		for _, n := range []int{1, 3, 4, 6} {
			t.Run(fmt.Sprintf("%s/n=%d", preset, n), func(t *testing.T) {
				spec := plain.KVSpec(n*blocksEach, bs)
				plainKV, err := plainB.NewKVCache(spec)
				if err != nil {
					t.Fatal(err)
				}
				defer plainB.FreeKVCache(plainKV)
				fusedKV, err := fusedB.NewKVCache(spec)
				if err != nil {
					t.Fatal(err)
				}
				defer fusedB.FreeKVCache(fusedKV)
				r := rand.New(rand.NewPCG(uint64(n), 9))
				next := make([][]int32, n)
				for i := range next {
					next[i] = make([]int32, 1+r.IntN(9))
					for j := range next[i] {
						next[i][j] = int32(r.IntN(vocab))
					}
				}
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
					wh, gh := download(t, plainB, want), download(t, fusedB, got)
					for i := range wh {
						if math.Float32bits(gh[i]) != math.Float32bits(wh[i]) {
							t.Fatalf("step %d: row %d logit %d = %g fused, %g plain", step, i/vocab, i%vocab, gh[i], wh[i])
						}
					}
					// per layer: 2 norms and 2 residual adds; and lm_head
					wantCalls := 0
					if step > 0 && n <= fusedB.rows {
						wantCalls = 4*fused.Config.NumHiddenLayers + 1
					}
					if calls-before != wantCalls {
						t.Fatalf("step %d of %d rows: %d fused ops, want %d", step, n, calls-before, wantCalls)
					}
					next = next[:0]
					for _, id := range argmaxRows(wh, vocab) {
						next = append(next, []int32{id})
					}
				}
			})
		}
	}
}
