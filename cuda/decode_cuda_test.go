//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// shape is a Llama-family model shape for the decode benchmark.
type shape struct {
	name                         string
	hidden, inter, layers, vocab int
	heads, kvHeads, headDim      int
}

var llama8B = shape{"llama-3.1-8b", 4096, 14336, 32, 128256, 32, 8, 128}

// decodeModel holds random bf16 weights of a shape on the device, and the
// persistent activation buffers of a batch-1 decode step.
type decodeModel struct {
	sh                                                     shape
	embed, lmHead                                          *backend.Weight
	qkv, o, gateUp, down                                   []*backend.Weight
	inNorm, postNorm                                       []backend.Tensor
	norm                                                   backend.Tensor
	resid, x, qkvOut, q, attn, proj, gu, mid, last, logits backend.Tensor
	cache                                                  backend.KVCache
	rope                                                   *backend.RoPE
	weightBytes                                            int64
	all                                                    []backend.Tensor // freed by free
}

// free releases the model's device memory.
func (m *decodeModel) free(b *Backend) {
	for _, t := range m.all {
		b.Free(t)
	}
	if m.cache != nil {
		b.FreeKVCache(m.cache)
	}
	m.all, m.cache = nil, nil
}

func (b *Backend) randWeight(rows, cols int, seed uint64) (*backend.Weight, error) {
	t, err := b.alloc(backend.BF16, rows, cols)
	if err != nil {
		return nil, err
	}
	if err := b.fillRandom(t, seed, 0.02*math.Sqrt2); err != nil {
		return nil, err
	}
	return &backend.Weight{Data: t, Rows: rows, Cols: cols}, nil
}

func newDecodeModel(b *Backend, sh shape, t, ctx int) (*decodeModel, error) {
	m := &decodeModel{sh: sh}
	var err error
	seed := uint64(1)
	w := func(rows, cols int) *backend.Weight {
		if err != nil {
			return nil
		}
		seed++
		var wt *backend.Weight
		wt, err = b.randWeight(rows, cols, seed)
		if err == nil {
			m.weightBytes += int64(rows) * int64(cols) * 2
			m.all = append(m.all, wt.Data)
		}
		return wt
	}
	ones := func(n int) backend.Tensor {
		if err != nil {
			return nil
		}
		var tt *Tensor
		tt, err = b.alloc(backend.BF16, n)
		if err == nil {
			m.all = append(m.all, tt)
			err = b.fillRandom(tt, seed, 0.1) // near-zero noise around...
		}
		return tt
	}
	act := func(dt backend.DType, shape ...int) backend.Tensor {
		if err != nil {
			return nil
		}
		var tt *Tensor
		tt, err = b.alloc(dt, shape...)
		if err == nil {
			m.all = append(m.all, tt)
		}
		return tt
	}
	m.embed = w(sh.vocab, sh.hidden)
	m.weightBytes -= int64(sh.vocab) * int64(sh.hidden) * 2 // decode reads one row of it
	qkvRows := (sh.heads + 2*sh.kvHeads) * sh.headDim
	for l := 0; l < sh.layers; l++ {
		m.qkv = append(m.qkv, w(qkvRows, sh.hidden))
		m.o = append(m.o, w(sh.hidden, sh.heads*sh.headDim))
		m.gateUp = append(m.gateUp, w(2*sh.inter, sh.hidden))
		m.down = append(m.down, w(sh.hidden, sh.inter))
		m.inNorm = append(m.inNorm, ones(sh.hidden))
		m.postNorm = append(m.postNorm, ones(sh.hidden))
	}
	m.norm = ones(sh.hidden)
	m.lmHead = w(sh.vocab, sh.hidden)
	m.resid = act(backend.BF16, t, sh.hidden)
	m.x = act(backend.BF16, t, sh.hidden)
	m.qkvOut = act(backend.BF16, t, qkvRows)
	m.q = act(backend.BF16, t, sh.heads*sh.headDim)
	m.attn = act(backend.BF16, t, sh.heads*sh.headDim)
	m.proj = act(backend.BF16, t, sh.hidden)
	m.gu = act(backend.BF16, t, 2*sh.inter)
	m.mid = act(backend.BF16, t, sh.inter)
	m.last = act(backend.BF16, t, sh.hidden)
	m.logits = act(backend.F32, t, sh.vocab)
	if err != nil {
		return nil, err
	}
	const bs = 16
	spec := backend.KVCacheSpec{Layers: sh.layers, NumBlocks: t * ((ctx+bs-1)/bs + 1), BlockSize: bs, KVHeads: sh.kvHeads, HeadDim: sh.headDim, DType: backend.BF16}
	if m.cache, err = b.NewKVCache(spec); err != nil {
		return nil, err
	}
	if err := b.fillRandom(m.cache.(*kvCache).t, 99, 1); err != nil {
		return nil, err
	}
	m.rope = ropeFor(sh.headDim)
	return m, nil
}

// Parts of a step, for the time breakdown.
const (
	partMatMul = 1 << iota
	partNorm
	partRope
	partAttn
	partSiLU
	partMisc  // embed, gather
	partOther = partNorm | partRope | partAttn | partSiLU | partMisc
	partAll   = partMatMul | partOther
	// partFused runs the norms and residual adds inside the projections
	// (backend.FusedLinear), as engine/model does for decode steps of at
	// most gemvMaxTokens rows; the parts are then counted as matmuls.
	partFused = 1 << 10
)

// step enqueues one forward step in the order engine/model's Forward uses
// (only the parts selected: matmuls, everything else, or both).
func (m *decodeModel) step(b *Backend, st backend.Step, parts int) error {
	sh := m.sh
	scale := float32(1 / math.Sqrt(float64(sh.headDim)))
	eps := float32(1e-5)
	var err error
	do := func(p int, f func() error) {
		if err == nil && parts&p != 0 {
			err = f()
		}
	}
	do(partMisc, func() error { return b.Embed(m.resid, m.embed, st) })
	if parts&partFused != 0 {
		for l := 0; l < sh.layers && err == nil; l++ {
			do(partMatMul, func() error { return b.NormMatMul(m.qkvOut, m.resid, m.inNorm[l], eps, m.qkv[l]) })
			do(partRope, func() error { return b.RoPEWriteKV(m.q, m.qkvOut, m.cache, l, m.rope, st) })
			do(partAttn, func() error { return b.Attention(m.attn, m.q, m.cache, l, scale, st) })
			do(partMatMul, func() error { return b.MatMulAdd(m.resid, m.attn, m.o[l]) })
			do(partMatMul, func() error { return b.NormMatMul(m.gu, m.resid, m.postNorm[l], eps, m.gateUp[l]) })
			do(partSiLU, func() error { return b.SiLUMul(m.mid, m.gu) })
			do(partMatMul, func() error { return b.MatMulAdd(m.resid, m.mid, m.down[l]) })
			if err != nil {
				return fmt.Errorf("layer %d: %w", l, err)
			}
		}
		do(partMatMul, func() error { return b.NormMatMul(m.logits, m.resid, m.norm, eps, m.lmHead) })
		return err
	}
	for l := 0; l < sh.layers && err == nil; l++ {
		if l == 0 {
			do(partNorm, func() error { return b.RMSNorm(m.x, m.resid, m.inNorm[l], eps) })
		} else {
			do(partNorm, func() error { return b.AddRMSNorm(m.x, m.resid, m.proj, m.inNorm[l], eps) })
		}
		do(partMatMul, func() error { return b.MatMul(m.qkvOut, m.x, m.qkv[l]) })
		do(partRope, func() error { return b.RoPEWriteKV(m.q, m.qkvOut, m.cache, l, m.rope, st) })
		do(partAttn, func() error { return b.Attention(m.attn, m.q, m.cache, l, scale, st) })
		do(partMatMul, func() error { return b.MatMul(m.proj, m.attn, m.o[l]) })
		do(partNorm, func() error { return b.AddRMSNorm(m.x, m.resid, m.proj, m.postNorm[l], eps) })
		do(partMatMul, func() error { return b.MatMul(m.gu, m.x, m.gateUp[l]) })
		do(partSiLU, func() error { return b.SiLUMul(m.mid, m.gu) })
		do(partMatMul, func() error { return b.MatMul(m.proj, m.mid, m.down[l]) })
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
	}
	do(partNorm, func() error { return b.AddRMSNorm(m.x, m.resid, m.proj, m.norm, eps) })
	do(partMisc, func() error { return b.GatherRows(m.last, m.x, st) })
	do(partMatMul, func() error { return b.MatMul(m.logits, m.last, m.lmHead) })
	return err
}

// decodeBatch is t sequences, each decoding its token at position ctx-1.
func decodeBatch(t, ctx int) *backend.Batch {
	const bs = 16
	per := (ctx+bs-1)/bs + 1
	b := &backend.Batch{QueryStart: []int32{0}}
	for i := 0; i < t; i++ {
		table := make([]int32, per)
		for j := range table {
			table[j] = int32(i*per + j)
		}
		p := ctx - 1
		b.Tokens = append(b.Tokens, int32(1000+i))
		b.Positions = append(b.Positions, int32(p))
		b.Slots = append(b.Slots, table[p/bs]*bs+int32(p%bs))
		b.QueryStart = append(b.QueryStart, int32(i+1))
		b.ContextLen = append(b.ContextLen, int32(ctx))
		b.BlockTables = append(b.BlockTables, table)
		b.LogitRows = append(b.LogitRows, int32(i))
	}
	return b
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkDecodeLlama8B times batch-1 (TOKAMAK_DECODE_BATCH) decode steps
// at a 512-token (TOKAMAK_DECODE_CTX) context on Llama-3.1-8B shapes with
// random bf16 weights, eager and as a CUDA graph, against the bound set by
// the device-to-device copy bandwidth measured in the same run.
func BenchmarkDecodeLlama8B(b *testing.B) {
	gpu := openTest(b)
	batch, ctx := envInt("TOKAMAK_DECODE_BATCH", 1), envInt("TOKAMAK_DECODE_CTX", 512)
	bw, err := gpu.CopyBandwidth(2 << 30)
	if err != nil {
		b.Fatal(err)
	}
	m, err := newDecodeModel(gpu, llama8B, batch, ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer m.free(gpu)
	defer gpu.DropGraphs()
	// as the engine's decode warm-up does: time the GEMMs' candidates
	if err := gpu.SetGEMMTuning(true); err != nil {
		b.Fatal(err)
	}
	defer gpu.SetGEMMTuning(false)
	st, err := gpu.Stage(decodeBatch(batch, ctx))
	if err != nil {
		b.Fatal(err)
	}
	reps := max(b.N, 20)
	eager, err := gpu.timeMS(func() error { return m.step(gpu, st, partAll) }, 3, reps)
	if err != nil {
		b.Fatal(err)
	}
	graphOf := func(variant, parts int) float64 {
		gpu.gemvVariant = variant
		defer func() { gpu.gemvVariant = 0 }()
		key := fmt.Sprintf("decode/v%d/p%d", variant, parts)
		ms, err := gpu.timeMS(func() error { return gpu.RunGraph(key, func() error { return m.step(gpu, st, parts) }) }, 3, reps)
		if err != nil {
			b.Fatal(err)
		}
		return ms
	}
	gpu.setPDL(false)
	noPDL := graphOf(0, partAll)
	gpu.DropGraphs()
	gpu.setPDL(true)
	eager, err = gpu.timeMS(func() error { return m.step(gpu, st, partAll) }, 3, reps)
	if err != nil {
		b.Fatal(err)
	}
	graph := graphOf(0, partAll)
	fmt.Printf("DECODE-PDL graph ms/step: without programmatic dependent launch %.3f, with %.3f\n", noPDL, graph)
	fusable := batch <= min(gpu.FusedLinearRows(m.qkv[0], true), gpu.FusedLinearRows(m.down[0], false))
	if fusable {
		// the engine's decode path at this batch: norms and residual adds
		// inside the GEMVs; it is the step reported below
		unfused := graph
		eager, err = gpu.timeMS(func() error { return m.step(gpu, st, partAll|partFused) }, 3, reps)
		if err != nil {
			b.Fatal(err)
		}
		graph = graphOf(0, partAll|partFused)
		fmt.Printf("DECODE-FUSED graph ms/step: separate norms %.3f, fused into the GEMVs %.3f (fused matmuls only %.3f)\n", unfused, graph, graphOf(0, partMatMul|partFused))
	}
	fmt.Printf("DECODE-PARTS graph ms/step: matmuls only %.3f, everything else %.3f (norms %.3f, rope %.3f, attention %.3f, silu %.3f, embed+gather %.3f)\n",
		graphOf(0, partMatMul), graphOf(0, partOther), graphOf(0, partNorm), graphOf(0, partRope), graphOf(0, partAttn), graphOf(0, partSiLU), graphOf(0, partMisc))
	for v := 0; v <= 2; v++ {
		fused := 0.0
		if fusable {
			fused = graphOf(v, partAll|partFused)
		}
		fmt.Printf("DECODE-GEMV variant %d: matmuls only %.3f ms/step, whole step %.3f ms, fused %.3f ms\n", v, graphOf(v, partMatMul), graphOf(v, partAll), fused)
	}
	boundMS := float64(m.weightBytes) / bw * 1e3
	b.ReportMetric(bw/1e9, "copyGB/s")
	b.ReportMetric(float64(m.weightBytes)/1e9, "weightGB")
	b.ReportMetric(eager, "eager-ms/step")
	b.ReportMetric(graph, "graph-ms/step")
	b.ReportMetric(float64(batch)*1e3/graph, "tok/s")
	b.ReportMetric(1e3/boundMS, "bound-tok/s")
	b.ReportMetric(100*boundMS/graph, "%bound")
	b.ReportMetric((eager-graph)*1e3, "graph-saved-us")
	fmt.Printf("DECODE %s batch=%d ctx=%d: copy %.0f GB/s, weights %.2f GB, bound %.3f ms (%.1f tok/s); eager %.3f ms, graph %.3f ms => %.1f tok/s/seq, %.1f%% of bound; launch gaps removed by graphs %.0f us/step\n",
		llama8B.name, batch, ctx, bw/1e9, float64(m.weightBytes)/1e9, boundMS, 1e3/boundMS, eager, graph, 1e3/graph, 100*boundMS/graph, (eager-graph)*1e3)
}

// BenchmarkCheckpointDecode loads the checkpoint named by TOKAMAK_CHECKPOINT
// through engine/model (disk → GPU, timed), then decodes batch 1 from a
// 511-token prompt one token at a time through model.Forward (eager: the
// engine's path today, with a logits download per step).
func BenchmarkCheckpointDecode(b *testing.B) {
	dir := os.Getenv("TOKAMAK_CHECKPOINT")
	if dir == "" {
		b.Skip("set TOKAMAK_CHECKPOINT to a checkpoint folder")
	}
	gpu, err := Open(Options{GPUMemoryUtilization: 0.9})
	if err != nil {
		b.Fatal(err)
	}
	defer gpu.Close()
	start := time.Now()
	m, err := model.Load(dir, gpu)
	if err != nil {
		b.Fatal(err)
	}
	if err := gpu.Sync(); err != nil {
		b.Fatal(err)
	}
	load := time.Since(start)
	fmt.Printf("LOAD %s: %.2f GB in %.1f s (%.2f GB/s)\n", dir, float64(m.WeightBytes)/1e9, load.Seconds(), float64(m.WeightBytes)/1e9/load.Seconds())
	const ctx, steps = 512, 64
	s, err := m.NewSession(ctx + steps + 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	prompt := make([]int32, ctx-1)
	for i := range prompt {
		prompt[i] = int32(100 + i)
	}
	t0 := time.Now()
	if _, err := s.Feed(prompt, false); err != nil {
		b.Fatal(err)
	}
	prefill := time.Since(t0)
	t0 = time.Now()
	for i := 0; i < steps; i++ {
		if _, err := s.Feed([]int32{int32(7 + i)}, false); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(t0) / steps
	fmt.Printf("ENGINE-DECODE model.Forward eager: prefill %d tokens %.1f ms; decode %.3f ms/token => %.1f tok/s\n", ctx-1, prefill.Seconds()*1e3, per.Seconds()*1e3, 1/per.Seconds())
}
