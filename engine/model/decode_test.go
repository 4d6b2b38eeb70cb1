package model_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// tinyRandom loads a random-weight model of a preset's architecture (bias,
// tied embeddings, qk-norm, RoPE scaling as the preset has them) shrunk to
// a few thousand parameters.
func tinyRandom(t testing.TB, preset string, b backend.Backend) *model.Model {
	t.Helper()
	cfg, err := model.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 64, 96, 2
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim, cfg.VocabSize = 4, 2, 16, 200
	dir := t.TempDir()
	if err := model.WriteRandom(dir, cfg, backend.BF16, 11); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// seqs is a set of sequences on one paged cache, each with its own blocks.
type seqs struct {
	bs     int
	tables [][]int32
	tokens [][]int32
}

func newSeqs(n, blocksEach, bs int) *seqs {
	s := &seqs{bs: bs}
	for i := range n {
		tbl := make([]int32, blocksEach)
		for j := range tbl {
			tbl[j] = int32(i*blocksEach + j)
		}
		s.tables = append(s.tables, tbl)
		s.tokens = append(s.tokens, nil)
	}
	return s
}

// step appends next[i] to sequence i for the sequences listed and returns
// the batch computing them; with prefill, next[i] may hold many tokens.
func (s *seqs) step(next [][]int32) *backend.Batch {
	b := &backend.Batch{QueryStart: []int32{0}}
	for i, ids := range next {
		p0 := len(s.tokens[i])
		s.tokens[i] = append(s.tokens[i], ids...)
		for j, id := range ids {
			p := int32(p0 + j)
			b.Tokens = append(b.Tokens, id)
			b.Positions = append(b.Positions, p)
			b.Slots = append(b.Slots, s.tables[i][int(p)/s.bs]*int32(s.bs)+p%int32(s.bs))
		}
		b.QueryStart = append(b.QueryStart, int32(len(b.Tokens)))
		b.ContextLen = append(b.ContextLen, int32(len(s.tokens[i])))
		b.BlockTables = append(b.BlockTables, s.tables[i])
		b.LogitRows = append(b.LogitRows, int32(len(b.Tokens)-1))
	}
	return b
}

func download(t *testing.T, b backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	h, err := b.Download(x)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newCache makes a KV cache on b, freed when the test ends.
func newCache(t *testing.T, b backend.Backend, spec backend.KVCacheSpec) backend.KVCache {
	t.Helper()
	kv, err := b.NewKVCache(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.FreeKVCache(kv) })
	return kv
}

// randomPrompts returns n prompts of 1 to 9 random tokens.
func randomPrompts(r *rand.Rand, n, vocab int) [][]int32 {
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = make([]int32, 1+r.IntN(9))
		for j := range prompts[i] {
			prompts[i][j] = int32(r.IntN(vocab))
		}
	}
	return prompts
}

// requireSameBits fails the test unless got and want (rows of vocab
// logits) are equal bit for bit; the names say which path each came from.
func requireSameBits(t *testing.T, step int, got, want []float32, vocab int, gotName, wantName string) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("step %d: row %d logit %d = %g %s, %g %s", step, i/vocab, i%vocab, got[i], gotName, want[i], wantName)
		}
	}
}

// greedyNext is each row's argmax as the next step's one-token input.
func greedyNext(x []float32, vocab int) [][]int32 {
	var next [][]int32
	for _, id := range argmaxRows(x, vocab) {
		next = append(next, []int32{id})
	}
	return next
}

func argmaxRows(x []float32, vocab int) []int32 {
	out := make([]int32, len(x)/vocab)
	for i := range out {
		row := x[i*vocab : (i+1)*vocab]
		for j, v := range row {
			if v > row[out[i]] {
				out[i] = int32(j)
			}
		}
	}
	return out
}

// TestDecoderPaddedMatchesEager runs the same sequences on two caches, one
// stepped with Model.Forward only, the other with its decode steps padded
// to their bucket by a Decoder, and requires the same logits bit for bit at
// every step: padding rows change nothing, the real rows' K and V are the
// same, and the pad block is never read by a real row.
func TestDecoderPaddedMatchesEager(t *testing.T) {
	const bs, blocksEach, steps = 4, 8, 4
	for _, preset := range []string{"llama-3.2-1b", "qwen2.5-0.5b", "qwen3-8b", "mistral-7b"} {
		b := cpu.New()
		m := tinyRandom(t, preset, b)
		vocab := m.Config.VocabSize
		for _, n := range []int{1, 3, 5, 8} {
			t.Run(fmt.Sprintf("%s/n=%d", preset, n), func(t *testing.T) {
				numBlocks := n*blocksEach + 1 // the last is the pad block
				spec := m.KVSpec(numBlocks, bs)
				eagerKV, padKV := newCache(t, b, spec), newCache(t, b, spec)
				dec, err := m.NewDecoder(padKV, model.DecoderConfig{Buckets: []int{1, 2, 4, 8}, PadBlock: int32(numBlocks - 1)})
				if err != nil {
					t.Fatal(err)
				}
				defer dec.Close()
				if g, err := dec.Warmup(); err != nil || g != 0 {
					t.Fatalf("warm-up on the CPU: %d graphs, %v; want 0, nil", g, err)
				}
				prompts := randomPrompts(rand.New(rand.NewPCG(uint64(n), 5)), n, vocab)
				eager, padded := newSeqs(n, blocksEach, bs), newSeqs(n, blocksEach, bs)
				var next [][]int32
				for _, s := range []*seqs{eager, padded} {
					kv := eagerKV
					if s == padded {
						kv = padKV
					}
					logits, err := m.Forward(s.step(prompts), kv)
					if err != nil {
						t.Fatal(err)
					}
					next = greedyNext(download(t, b, logits), vocab)
				}
				for step := range steps {
					batch := eager.step(next)
					want, err := m.Forward(batch, eagerKV)
					if err != nil {
						t.Fatal(err)
					}
					wh := download(t, b, want)
					pb := padded.step(next)
					if !dec.Fits(pb) {
						t.Fatalf("decoder does not take a decode step of %d rows", n)
					}
					got, err := dec.Forward(pb)
					if err != nil {
						t.Fatal(err)
					}
					if s := got.Shape(); len(s) != 2 || s[0] != n || s[1] != vocab {
						t.Fatalf("logits shape %v, want [%d %d]", s, n, vocab)
					}
					gh := download(t, b, got)
					b.Free(got) // as the engine does; the buffer stays the decoder's
					requireSameBits(t, step, gh, wh, vocab, "padded", "eager")
					next = greedyNext(wh, vocab)
				}
			})
		}
	}
}

// TestDecoderTakesOnlyDecodeSteps checks Fits: prefill rows, missing
// logit rows and batches above the top bucket go to Model.Forward.
func TestDecoderTakesOnlyDecodeSteps(t *testing.T) {
	b := cpu.New()
	m := tinyRandom(t, "llama-3.2-1b", b)
	kv, err := b.NewKVCache(m.KVSpec(40, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer b.FreeKVCache(kv)
	dec, err := m.NewDecoder(kv, model.DecoderConfig{MaxSeqs: 3, PadBlock: 39})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if got := dec.Buckets(); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("buckets %v capped at 3 sequences, want [1 2 3]", got)
	}
	s := newSeqs(4, 4, 4)
	prefill := s.step([][]int32{{1, 2}, {3}})
	if dec.Fits(prefill) {
		t.Error("a step with a 2-token sequence fits")
	}
	if _, err := dec.Forward(prefill); !errors.Is(err, model.ErrNotDecode) {
		t.Errorf("Forward of a prefill step: %v, want ErrNotDecode", err)
	}
	four := s.step([][]int32{{1}, {2}, {3}, {4}})
	if dec.Fits(four) {
		t.Error("4 sequences fit a ladder topped at 3")
	}
	three := s.step([][]int32{{1}, {2}, {3}})
	if !dec.Fits(three) {
		t.Error("a decode step of 3 does not fit")
	}
	three.LogitRows = three.LogitRows[:2]
	if dec.Fits(three) {
		t.Error("a step asking for 2 of 3 rows' logits fits")
	}
	if _, err := m.NewDecoder(kv, model.DecoderConfig{PadBlock: 40}); err == nil {
		t.Error("pad block outside the cache accepted")
	}
	if _, err := m.NewDecoder(kv, model.DecoderConfig{Buckets: []int{4, 2}, PadBlock: 39}); err == nil {
		t.Error("descending buckets accepted")
	}
}

// TestSessionCloseFreesCache: Feed fails after Close, a second Close does
// nothing, and the CPU cache refuses ops once freed.
func TestSessionCloseFreesCache(t *testing.T) {
	b := cpu.New()
	m := tinyRandom(t, "llama-3.2-1b", b)
	s, err := m.NewSession(16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Feed([]int32{1, 2}, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if _, err := s.Feed([]int32{3}, false); err == nil {
		t.Fatal("Feed after Close succeeded")
	}
	kv, err := b.NewKVCache(m.KVSpec(2, 16))
	if err != nil {
		t.Fatal(err)
	}
	b.FreeKVCache(kv)
	b.FreeKVCache(kv) // harmless
	b.FreeKVCache(nil)
	batch := newSeqs(1, 2, 16).step([][]int32{{5}})
	if _, err := m.Forward(batch, kv); err == nil {
		t.Fatal("Forward on a freed cache succeeded")
	}
}
