//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// randomModel writes a random bf16 checkpoint of a preset's architecture
// (shrunk unless full) and loads it on gpu.
func randomModel(tb testing.TB, gpu *Backend, preset string, shrink func(*model.Config)) *model.Model {
	tb.Helper()
	cfg, err := model.Preset(preset)
	if err != nil {
		tb.Fatal(err)
	}
	if shrink != nil {
		shrink(cfg)
	}
	dir := tb.TempDir()
	if err := model.WriteRandom(dir, cfg, backend.BF16, 5); err != nil {
		tb.Fatal(err)
	}
	m, err := model.Load(dir, gpu)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

func tinyShape(c *model.Config) {
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 96, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize = 4, 2, 16, 200
}

func smallShape(c *model.Config) {
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 512, 1408, 3
	c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize = 8, 2, 64, 1000
}

// decodeSeqs lays out n sequences of a paged cache, blocksEach blocks each.
type decodeSeqs struct {
	bs, blocksEach int
	lens           []int
}

func (s *decodeSeqs) table(i int) []int32 {
	t := make([]int32, s.blocksEach)
	for j := range t {
		t[j] = int32(i*s.blocksEach + j)
	}
	return t
}

// batch appends ids[i] (one or more tokens) to sequence i.
func (s *decodeSeqs) batch(ids [][]int32) *backend.Batch {
	b := &backend.Batch{QueryStart: []int32{0}}
	for i, toks := range ids {
		tbl := s.table(i)
		for _, id := range toks {
			p := int32(s.lens[i])
			s.lens[i]++
			b.Tokens = append(b.Tokens, id)
			b.Positions = append(b.Positions, p)
			b.Slots = append(b.Slots, tbl[int(p)/s.bs]*int32(s.bs)+p%int32(s.bs))
		}
		b.QueryStart = append(b.QueryStart, int32(len(b.Tokens)))
		b.ContextLen = append(b.ContextLen, int32(s.lens[i]))
		b.BlockTables = append(b.BlockTables, tbl)
		b.LogitRows = append(b.LogitRows, int32(len(b.Tokens)-1))
	}
	return b
}

func (s *decodeSeqs) clone() *decodeSeqs {
	c := *s
	c.lens = append([]int(nil), s.lens...)
	return &c
}

func downloadFree(t *testing.T, gpu *Backend, x backend.Tensor) []float32 {
	t.Helper()
	h, err := gpu.Download(x)
	if err != nil {
		t.Fatal(err)
	}
	gpu.Free(x)
	return h
}

// TestDecodeGraphMatchesEager runs decode steps of 1 to 64 sequences
// three ways on their own caches: the bucket-padded pass replayed from its
// CUDA graph, the same padded pass run op by op, and Model.Forward on the
// unpadded batch. Graph and op-by-op must agree bit for bit; the unpadded
// pass (other GEMM and split-KV shapes) within 2e-2 relative (L2) error.
// Warm-up captures one graph per bucket and the steps after it (eager
// prefills in between included) capture none, also when an earlier model
// of other heads on the same backend has sized the attention workspace
// (mistral-7b's small shape after the tiny ones: its warm-up buckets fit
// that workspace, its 718-row prefill did not).
func TestDecodeGraphMatchesEager(t *testing.T) {
	gpu, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Close()
	cases := []struct {
		preset string
		shape  func(*model.Config)
	}{
		{"llama-3.2-1b", tinyShape}, {"qwen2.5-0.5b", tinyShape}, {"qwen3-8b", tinyShape}, {"mistral-7b", smallShape},
	}
	for _, tc := range cases {
		t.Run(tc.preset, func(t *testing.T) {
			m := randomModel(t, gpu, tc.preset, tc.shape)
			vocab := m.Config.VocabSize
			const bs, blocksEach, maxSeqs, steps = 16, 4, 64, 3
			numBlocks := maxSeqs*blocksEach + 1
			var caches [3]backend.KVCache
			for i := range caches {
				if caches[i], err = gpu.NewKVCache(m.KVSpec(numBlocks, bs)); err != nil {
					t.Fatal(err)
				}
				defer gpu.FreeKVCache(caches[i])
			}
			kvG, kvE, kvU := caches[0], caches[1], caches[2]
			cfg := model.DecoderConfig{MaxSeqs: maxSeqs, PadBlock: int32(numBlocks - 1), StageTokens: 2048, StageSeqs: maxSeqs, StageBlocksPerSeq: blocksEach}
			decG, err := m.NewDecoder(kvG, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer decG.Close()
			cfg.Eager = true
			decE, err := m.NewDecoder(kvE, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer decE.Close()
			c0 := gpu.GraphCaptures()
			t0 := time.Now()
			n, err := decG.Warmup()
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			if want := len(decG.Buckets()); n != want || gpu.GraphCaptures()-c0 != want {
				t.Fatalf("warm-up: %d graphs reported, %d captured; want %d (buckets %v); graph events: %v", n, gpu.GraphCaptures()-c0, want, decG.Buckets(), gpu.GraphEvents())
			}
			if n, err := decE.Warmup(); err != nil || n != 0 {
				t.Fatalf("eager warm-up: %d graphs, %v", n, err)
			}
			fmt.Printf("GRAPHS %s: warm-up captured %d graphs (buckets %v) in %d ms\n", tc.preset, n, decG.Buckets(), took.Milliseconds())
			c1, e1 := gpu.GraphCaptures(), len(gpu.GraphEvents())
			r := rand.New(rand.NewPCG(2, 3))
			worst := 0.0
			for _, rows := range []int{1, 3, 8, 13, 64} {
				prompts := make([][]int32, rows)
				for i := range prompts {
					prompts[i] = make([]int32, 1+r.IntN(20))
					for j := range prompts[i] {
						prompts[i][j] = int32(r.IntN(vocab))
					}
				}
				base := &decodeSeqs{bs: bs, blocksEach: blocksEach, lens: make([]int, rows)}
				var seqs [3]*decodeSeqs
				var next [][]int32
				for i, kv := range caches {
					seqs[i] = base.clone()
					logits, err := m.Forward(seqs[i].batch(prompts), kv)
					if err != nil {
						t.Fatal(err)
					}
					h := downloadFree(t, gpu, logits)
					if i == 1 {
						next = argmaxIDs(h, vocab)
					}
				}
				for step := range steps {
					got, err := decG.Forward(seqs[0].batch(next))
					if err != nil {
						t.Fatal(err)
					}
					g := downloadFree(t, gpu, got)
					want, err := decE.Forward(seqs[1].batch(next))
					if err != nil {
						t.Fatal(err)
					}
					e := downloadFree(t, gpu, want)
					unp, err := m.Forward(seqs[2].batch(next), kvU)
					if err != nil {
						t.Fatal(err)
					}
					u := downloadFree(t, gpu, unp)
					for i := range e {
						if math.Float32bits(g[i]) != math.Float32bits(e[i]) {
							t.Fatalf("%d rows, step %d: row %d logit %d = %g from the graph, %g op by op", rows, step, i/vocab, i%vocab, g[i], e[i])
						}
					}
					for i := 0; i < rows; i++ {
						rel, _ := relErr(e[i*vocab:(i+1)*vocab], u[i*vocab:(i+1)*vocab])
						worst = max(worst, rel)
						if rel > 2e-2 {
							t.Errorf("%d rows, step %d, row %d: padded vs unpadded relative error %.4f", rows, step, i, rel)
						}
					}
					next = argmaxIDs(e, vocab)
				}
			}
			if c := gpu.GraphCaptures() - c1; c != 0 {
				t.Errorf("%d graphs captured after warm-up, want 0 (replays only); graph events since: %v", c, gpu.GraphEvents()[e1:])
			}
			fmt.Printf("GRAPHS %s: graph == op-by-op bit for bit over 1..64 rows; padded vs unpadded max relative error %.2e; recaptures %d\n", tc.preset, worst, gpu.GraphCaptures()-c1)
		})
	}
}

func argmaxIDs(x []float32, vocab int) [][]int32 {
	out := make([][]int32, len(x)/vocab)
	for i := range out {
		row := x[i*vocab : (i+1)*vocab]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = []int32{int32(best)}
	}
	return out
}

// BenchmarkDecodeGraphs times a decode step (forward and stream sync, no
// sampling) of a random checkpoint of TOKAMAK_GRAPH_PRESET (default
// llama-3.2-1b) at a 512-token context for batch 1 and 64: replayed from
// the bucket's CUDA graph, the same padded pass op by op, and
// Model.Forward (what the engine runs without graphs).
func BenchmarkDecodeGraphs(b *testing.B) {
	preset := os.Getenv("TOKAMAK_GRAPH_PRESET")
	if preset == "" {
		preset = "llama-3.2-1b"
	}
	gpu, err := Open(Options{GPUMemoryUtilization: 0.85})
	if err != nil {
		b.Fatal(err)
	}
	defer gpu.Close()
	m := randomModel(b, gpu, preset, nil)
	const bs, ctx, maxSeqs = 16, 512, 64
	blocksEach := (ctx + bs) / bs
	numBlocks := maxSeqs*blocksEach + 1
	kv, err := gpu.NewKVCache(m.KVSpec(numBlocks, bs))
	if err != nil {
		b.Fatal(err)
	}
	defer gpu.FreeKVCache(kv)
	if err := gpu.fillCache(kv); err != nil {
		b.Fatal(err)
	}
	cfg := model.DecoderConfig{MaxSeqs: maxSeqs, PadBlock: int32(numBlocks - 1), StageTokens: 2048, StageSeqs: maxSeqs, StageBlocksPerSeq: blocksEach}
	decG, err := m.NewDecoder(kv, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer decG.Close()
	t0 := time.Now()
	n, err := decG.Warmup()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("GRAPH-BENCH %s: warm-up captured %d graphs in %d ms\n", preset, n, time.Since(t0).Milliseconds())
	cfg.Eager = true
	decE, err := m.NewDecoder(kv, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer decE.Close()
	for _, rows := range []int{1, 64} {
		seqs := &decodeSeqs{bs: bs, blocksEach: blocksEach, lens: make([]int, rows)}
		for i := range seqs.lens {
			seqs.lens[i] = ctx - 1
		}
		ids := make([][]int32, rows)
		for i := range ids {
			ids[i] = []int32{int32(100 + i)}
		}
		batch := seqs.batch(ids) // every step rewrites position ctx-1
		modes := []struct {
			name string
			step func() (backend.Tensor, error)
		}{
			{"graph", func() (backend.Tensor, error) { return decG.Forward(batch) }},
			{"eager-padded", func() (backend.Tensor, error) { return decE.Forward(batch) }},
			{"forward", func() (backend.Tensor, error) { return m.Forward(batch, kv) }},
		}
		for _, mode := range modes {
			b.Run(fmt.Sprintf("b%d/%s", rows, mode.name), func(b *testing.B) {
				run := func() {
					logits, err := mode.step()
					if err != nil {
						b.Fatal(err)
					}
					if err := gpu.Sync(); err != nil {
						b.Fatal(err)
					}
					gpu.Free(logits)
				}
				for range 3 {
					run()
				}
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					run()
				}
				ms := time.Since(start).Seconds() * 1e3 / float64(b.N)
				b.ReportMetric(ms, "ms/step")
				b.ReportMetric(float64(rows)/ms*1e3, "tokens/s")
				fmt.Printf("GRAPH-BENCH %s b=%d %s: %.3f ms/step\n", preset, rows, mode.name, ms)
			})
		}
	}
}
