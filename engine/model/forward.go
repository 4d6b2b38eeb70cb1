package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// KVSpec returns the paged KV cache layout this model needs for numBlocks
// blocks of blockSizeTokens tokens, in the backend's activation dtype.
func (m *Model) KVSpec(numBlocks, blockSizeTokens int) backend.KVCacheSpec {
	return backend.KVCacheSpec{
		Layers:    m.Config.NumHiddenLayers,
		NumBlocks: numBlocks,
		BlockSize: blockSizeTokens,
		KVHeads:   m.Config.NumKeyValueHeads,
		HeadDim:   m.Config.HeadDim,
		DType:     m.b.ActivationDType(),
	}
}

// scratch holds one step's activations, freed when the step ends.
type scratch struct {
	b    backend.Backend
	list []backend.Tensor
	err  error
}

func (s *scratch) alloc(dt backend.DType, shape ...int) backend.Tensor {
	if s.err != nil {
		return nil
	}
	t, err := s.b.Alloc(dt, shape...)
	if err != nil {
		s.err = fmt.Errorf("alloc %s%v: %w", dt, shape, err)
		return nil
	}
	s.list = append(s.list, t)
	return t
}

func (s *scratch) free(keep backend.Tensor) {
	for _, t := range s.list {
		if t != keep {
			s.b.Free(t)
		}
	}
}

// acts are one step's activations, [rows, ...] each; last is nil when
// every row's logits are wanted in row order (no gather).
type acts struct {
	resid, x, qkv, q, attn, proj, gu, mid, last, logits backend.Tensor
	// fused folds the RMSNorms into the projections after them and the
	// residual adds into the projections before them (backend.FusedLinear);
	// only for steps of at most fuseRows rows whose logit rows are all rows,
	// in order (decode steps), since the final norm feeds lm_head directly.
	fused bool
}

// fusable reports whether a step of batch may run the fused forward: few
// enough rows, and one logit row per row in order (so lm_head reads the
// final norm of every row, with no gather between them).
func (m *Model) fusable(batch *backend.Batch) bool {
	t := len(batch.Tokens)
	if t == 0 || t > m.fuseRows || len(batch.LogitRows) != t {
		return false
	}
	for i, r := range batch.LogitRows {
		if int(r) != i {
			return false
		}
	}
	return true
}

// check validates a batch against the cache and the vocabulary.
func (m *Model) check(batch *backend.Batch, cache backend.KVCache) error {
	spec := cache.Spec()
	if err := batch.Validate(spec.NumBlocks, spec.BlockSize); err != nil {
		return err
	}
	if len(batch.LogitRows) == 0 {
		return errors.New("forward: batch asks for no logits")
	}
	for _, id := range batch.Tokens {
		if id < 0 || int(id) >= m.Config.VocabSize {
			return fmt.Errorf("forward: token id %d outside vocabulary of %d", id, m.Config.VocabSize)
		}
	}
	return nil
}

// Forward runs one step over the batch's new tokens, writing their K and V
// into cache, and returns float32 logits [len(batch.LogitRows), vocab]. The
// caller owns the returned tensor and frees it with the backend.
func (m *Model) Forward(batch *backend.Batch, cache backend.KVCache) (logits backend.Tensor, err error) {
	if err := m.check(batch, cache); err != nil {
		return nil, err
	}
	b := m.b
	st, err := b.Stage(batch)
	if err != nil {
		return nil, fmt.Errorf("forward: stage: %w", err)
	}
	c := m.Config
	t := len(batch.Tokens)
	hd, hq := c.HeadDim, c.NumAttentionHeads
	act := b.ActivationDType()
	s := &scratch{b: b}
	n := len(batch.LogitRows)
	a := &acts{
		resid:  s.alloc(act, t, c.HiddenSize),
		x:      s.alloc(act, t, c.HiddenSize),
		qkv:    s.alloc(act, t, c.QKVRows()),
		q:      s.alloc(act, t, hq*hd),
		attn:   s.alloc(act, t, hq*hd),
		proj:   s.alloc(act, t, c.HiddenSize),
		gu:     s.alloc(act, t, 2*c.IntermediateSize),
		mid:    s.alloc(act, t, c.IntermediateSize),
		last:   s.alloc(act, n, c.HiddenSize),
		logits: s.alloc(backend.F32, n, c.VocabSize),
	}
	logits = a.logits
	defer func() {
		if err != nil {
			s.free(nil)
			logits = nil
		} else {
			s.free(logits)
		}
	}()
	if s.err != nil {
		return nil, fmt.Errorf("forward: %w", s.err)
	}
	a.fused = m.fusable(batch)
	if p, ok := b.(backend.OpProfiler); ok {
		kind := "decode"
		if len(batch.QueryStart) != t+1 {
			kind = "prefill"
		}
		p.ProfileBegin(kind)
	}
	if err := m.run(a, cache, st); err != nil {
		return nil, err
	}
	return logits, nil
}

// run enqueues the forward pass of a staged step on the activations a. It
// allocates nothing and does not Stage, Download or Sync, so a graph can
// record it.
func (m *Model) run(a *acts, cache backend.KVCache, st backend.Step) (err error) {
	b, c := m.b, m.Config
	hd, hq := c.HeadDim, c.NumAttentionHeads
	eps := float32(c.RMSNormEps)
	scale := float32(1 / math.Sqrt(float64(hd)))
	prof, _ := b.(backend.OpProfiler)
	run := func(what string, layer int, e error) error {
		if e != nil && err == nil {
			err = fmt.Errorf("forward: layer %d %s: %w", layer, what, e)
		}
		if prof != nil {
			prof.ProfileMark(what)
		}
		return err
	}
	if run("embed", -1, b.Embed(a.resid, m.embed, st)) != nil {
		return err
	}
	// a.fused: the residual stream stays in a.resid; each projection that
	// reads a norm of it normalises on the fly, o_proj and down add into it
	f, _ := b.(backend.FusedLinear)
	for i := range m.layers {
		ly := &m.layers[i]
		switch {
		case a.fused:
			run("qkv", i, f.NormMatMul(a.qkv, a.resid, ly.inNorm, eps, ly.qkv))
		case i == 0:
			run("input norm", i, b.RMSNorm(a.x, a.resid, ly.inNorm, eps))
			run("qkv", i, b.MatMul(a.qkv, a.x, ly.qkv))
		default:
			run("input norm", i, b.AddRMSNorm(a.x, a.resid, a.proj, ly.inNorm, eps))
			run("qkv", i, b.MatMul(a.qkv, a.x, ly.qkv))
		}
		if c.QKNorm {
			run("q norm", i, b.HeadRMSNorm(a.qkv, 0, hq, hd, ly.qNorm, eps))
			run("k norm", i, b.HeadRMSNorm(a.qkv, hq*hd, c.NumKeyValueHeads, hd, ly.kNorm, eps))
		}
		run("rope", i, b.RoPEWriteKV(a.q, a.qkv, cache, i, m.rope, st))
		run("attention", i, b.Attention(a.attn, a.q, cache, i, scale, st))
		if a.fused {
			run("o_proj", i, f.MatMulAdd(a.resid, a.attn, ly.o))
			run("gate_up", i, f.NormMatMul(a.gu, a.resid, ly.postNorm, eps, ly.gateUp))
		} else {
			run("o_proj", i, b.MatMul(a.proj, a.attn, ly.o))
			run("post norm", i, b.AddRMSNorm(a.x, a.resid, a.proj, ly.postNorm, eps))
			run("gate_up", i, b.MatMul(a.gu, a.x, ly.gateUp))
		}
		run("silu", i, b.SiLUMul(a.mid, a.gu))
		if a.fused {
			run("down", i, f.MatMulAdd(a.resid, a.mid, ly.down))
		} else {
			run("down", i, b.MatMul(a.proj, a.mid, ly.down))
		}
		if err != nil {
			return err
		}
	}
	if a.fused {
		return run("lm_head", -1, f.NormMatMul(a.logits, a.resid, m.norm, eps, m.lmHead))
	}
	run("final norm", -1, b.AddRMSNorm(a.x, a.resid, a.proj, m.norm, eps))
	last := a.x
	if a.last != nil {
		run("gather", -1, b.GatherRows(a.last, a.x, st))
		last = a.last
	}
	run("lm_head", -1, b.MatMul(a.logits, last, m.lmHead))
	return err
}

// ActivationBytes is the device memory one step of tokens tokens with
// logitRows logit rows allocates for its activations (the buffers of
// Forward, in the backend's activation dtype, and the float32 logits), so
// a caller can size the KV cache from what is left.
func (m *Model) ActivationBytes(tokens, logitRows int) int64 {
	c := m.Config
	act := int64(m.b.ActivationDType().Bytes(1))
	hqd := int64(c.NumAttentionHeads * c.HeadDim)
	perToken := 3*int64(c.HiddenSize) + int64(c.QKVRows()) + 2*hqd + 3*int64(c.IntermediateSize)
	return int64(tokens)*perToken*act + int64(logitRows)*(int64(c.HiddenSize)*act+4*int64(c.VocabSize))
}
