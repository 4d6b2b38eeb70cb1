package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"strings"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// opCase is one row of the op table: it makes fresh random host inputs and
// runs one op on any backend. The same table drives the CUDA parity tests
// (every case on the GPU against the CPU oracle) and the kernel
// microbenchmarks (bytes and FLOPs give GB/s and TFLOP/s).
type opCase struct {
	name string
	// tol is the relative error allowed (‖gpu−cpu‖/‖cpu‖).
	tol float64
	// bytes and flops are the minimal device traffic and arithmetic of one run.
	bytes, flops float64
	// benchOnly cases are too large for the CPU oracle: benchmarks only.
	benchOnly bool
	// variant is the CUDA attention variant the case runs under (0: the
	// default); the CPU has one attention, so its twins add nothing there.
	variant int
	prep    func(be backend.Backend, r *rand.Rand) (*prepared, error)
}

// prepared holds a case's inputs on one backend: run enqueues the op; outs
// (pure outputs, poisoned before the run) and inout (updated in place) are
// what the parity test compares.
type prepared struct {
	run   func() error
	outs  []backend.Tensor
	inout []backend.Tensor
	free  func() // releases large buffers (benchmark cases), or nil
}

// rbf16 rounds v to the nearest bfloat16 (ties to even), so both backends
// see exactly the same input values.
func rbf16(v float32) float32 {
	u := math.Float32bits(v)
	u += 0x7fff + (u>>16)&1
	return math.Float32frombits(u & 0xffff0000)
}

func randVals(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rbf16((2*r.Float32() - 1) * scale)
	}
	return v
}

// upload puts float32 values on a backend in dtype dt (values already
// representable in bf16 when dt is bf16).
func upload(be backend.Backend, dt backend.DType, shape []int, v []float32) (backend.Tensor, error) {
	raw := make([]byte, dt.Bytes(len(v)))
	switch dt {
	case backend.F32:
		for i, f := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
	case backend.BF16:
		for i, f := range v {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(math.Float32bits(rbf16(f))>>16))
		}
	default:
		return nil, fmt.Errorf("upload of %s not supported in tests", dt)
	}
	return be.Upload(dt, shape, raw)
}

// actUp uploads activations (and norm weights, biases) in the backend's
// activation dtype.
func actUp(be backend.Backend, shape []int, v []float32) (backend.Tensor, error) {
	return upload(be, be.ActivationDType(), shape, v)
}

type errs struct{ err error }

func (e *errs) t(t backend.Tensor, err error) backend.Tensor {
	if e.err == nil && err != nil {
		e.err = err
	}
	return t
}

// paged builds a batch of sequences with the given new-token counts and
// context lengths over a shuffled block pool.
func paged(r *rand.Rand, newTok, ctx []int, blockSize, numBlocks int) *backend.Batch {
	b := &backend.Batch{QueryStart: []int32{0}}
	perm := r.Perm(numBlocks)
	next := 0
	for i := range newTok {
		nb := (ctx[i] + blockSize - 1) / blockSize
		table := make([]int32, nb)
		for j := range table {
			table[j] = int32(perm[next])
			next++
		}
		b.BlockTables = append(b.BlockTables, table)
		b.ContextLen = append(b.ContextLen, int32(ctx[i]))
		for p := ctx[i] - newTok[i]; p < ctx[i]; p++ {
			b.Tokens = append(b.Tokens, int32(r.Intn(1000)))
			b.Positions = append(b.Positions, int32(p))
			b.Slots = append(b.Slots, table[p/blockSize]*int32(blockSize)+int32(p%blockSize))
		}
		b.QueryStart = append(b.QueryStart, int32(len(b.Tokens)))
		b.LogitRows = append(b.LogitRows, int32(len(b.Tokens)-1))
	}
	return b
}

func ropeFor(hd int) *backend.RoPE {
	inv := make([]float32, hd/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(500000, float64(2*i)/float64(hd)))
	}
	return &backend.RoPE{HeadDim: hd, InvFreq: inv, AttnFactor: 1}
}

const bfTol = 2e-2

func normCase(t, d int, add bool) opCase {
	name := fmt.Sprintf("rmsnorm/T%d/D%d", t, d)
	if add {
		name = "add_" + name
	}
	bytes := float64(t*d) * 4
	if add {
		bytes = float64(t*d) * 8
	}
	return opCase{name: name, tol: bfTol, bytes: bytes, prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
		var e errs
		x := e.t(actUp(be, []int{t, d}, randVals(r, t*d, 2)))
		res := e.t(actUp(be, []int{t, d}, randVals(r, t*d, 2)))
		w := e.t(actUp(be, []int{d}, randVals(r, d, 1.5)))
		out := e.t(be.Alloc(be.ActivationDType(), t, d))
		if e.err != nil {
			return nil, e.err
		}
		if add {
			return &prepared{run: func() error { return be.AddRMSNorm(out, res, x, w, 1e-5) }, outs: []backend.Tensor{out}, inout: []backend.Tensor{res}}, nil
		}
		return &prepared{run: func() error { return be.RMSNorm(out, x, w, 1e-5) }, outs: []backend.Tensor{out}}, nil
	}}
}

// projection uploads a random bf16 weight [rows, cols], with a bias.
func projection(be backend.Backend, r *rand.Rand, e *errs, rows, cols int, bias bool) *backend.Weight {
	w := &backend.Weight{Rows: rows, Cols: cols, Data: e.t(upload(be, backend.BF16, []int{rows, cols}, randVals(r, rows*cols, 0.05)))}
	if bias {
		w.Bias = e.t(actUp(be, []int{rows}, randVals(r, rows, 0.5)))
	}
	return w
}

// projOut allocates a projection's output [t, rows] of dt (bf16 meaning
// the backend's activation dtype).
func projOut(be backend.Backend, e *errs, dt backend.DType, t, rows int) backend.Tensor {
	if dt == backend.BF16 {
		dt = be.ActivationDType()
	}
	return e.t(be.Alloc(dt, t, rows))
}

func matmulCase(t, rows, cols int, outDT backend.DType, bias bool) opCase {
	name := fmt.Sprintf("matmul/T%d/%dx%d/%s", t, rows, cols, outDT)
	if bias {
		name += "/bias"
	}
	return opCase{name: name, tol: bfTol, bytes: float64(rows*cols*2 + t*cols*2 + t*rows*outDT.Bits()/8), flops: 2 * float64(t*rows*cols),
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			var e errs
			x := e.t(actUp(be, []int{t, cols}, randVals(r, t*cols, 1)))
			w := projection(be, r, &e, rows, cols, bias)
			out := projOut(be, &e, outDT, t, rows)
			if e.err != nil {
				return nil, e.err
			}
			return &prepared{run: func() error { return be.MatMul(out, x, w) }, outs: []backend.Tensor{out}}, nil
		}}
}

// fusedCase is a projection fused with the RMSNorm before it (norm) or
// with the residual add after it: backend.FusedLinear where the backend has
// it, else backend.Composed (the separate ops: the CPU oracle).
func fusedCase(t, rows, cols int, norm, bias bool) opCase {
	name := fmt.Sprintf("matmul_add/T%d/%dx%d", t, rows, cols)
	outDT := backend.BF16
	if norm {
		name = fmt.Sprintf("norm_matmul/T%d/%dx%d", t, rows, cols)
		if rows%2 == 0 {
			outDT = backend.F32 // as lm_head writes logits
		}
	}
	if bias {
		name += "/bias"
	}
	return opCase{name: name, tol: bfTol, bytes: float64(rows*cols*2 + t*cols*2 + t*rows*outDT.Bits()/8), flops: 2 * float64(t*rows*cols),
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			var e errs
			x := e.t(actUp(be, []int{t, cols}, randVals(r, t*cols, 2)))
			w := projection(be, r, &e, rows, cols, bias)
			if e.err != nil {
				return nil, e.err
			}
			f, ok := be.(backend.FusedLinear)
			if !ok {
				f = backend.Composed{Backend: be, Rows: t}
			}
			if f.FusedLinearRows(w, norm) < t {
				return nil, fmt.Errorf("%s: backend fuses at most %d rows", name, f.FusedLinearRows(w, norm))
			}
			if norm {
				g := e.t(actUp(be, []int{cols}, randVals(r, cols, 1.5)))
				out := projOut(be, &e, outDT, t, rows)
				return &prepared{run: func() error { return f.NormMatMul(out, x, g, 1e-5, w) }, outs: []backend.Tensor{out}}, e.err
			}
			res := e.t(actUp(be, []int{t, rows}, randVals(r, t*rows, 2)))
			return &prepared{run: func() error { return f.MatMulAdd(res, x, w) }, inout: []backend.Tensor{res}}, e.err
		}}
}

// attentionVariant is implemented by the CUDA backend: it picks the
// attention kernels (tk_set_attention_variant: 1 the generic kernel, the
// baseline; 4 and 5 the balanced decode kernel) and returns the previous
// choice.
type attentionVariant interface {
	setAttentionVariant(v int) int
}

// withAttentionVariant runs fn with attention variant v where the backend
// has a choice (the CPU oracle has none); 0 keeps the configured one.
func withAttentionVariant(be backend.Backend, v int, fn func() error) error {
	av, ok := be.(attentionVariant)
	if v == 0 || !ok {
		return fn()
	}
	prev := av.setAttentionVariant(v)
	defer av.setAttentionVariant(prev)
	return fn()
}

// onVariant is case c, renamed, with its run on attention variant v.
func onVariant(c opCase, v int, name string) opCase {
	prep := c.prep
	c.name = name
	c.variant = v
	c.prep = func(be backend.Backend, r *rand.Rand) (*prepared, error) {
		p, err := prep(be, r)
		if err != nil {
			return nil, err
		}
		run := p.run
		p.run = func() error { return withAttentionVariant(be, v, run) }
		return p, nil
	}
	return c
}

// poisoner is implemented by the CUDA backend: it fills a tensor with NaN.
type poisoner interface {
	poison(t backend.Tensor) error
}

// attnWork returns the minimal bytes (K/V read once, q read, out written)
// and the causal FLOPs (4·D per visible (row, key) pair per query head) of
// one attention call over sequences with newTok query rows and ctx tokens.
func attnWork(newTok, ctx []int, hq, hkv, hd int) (bytes, flops float64) {
	for i := range ctx {
		bytes += float64(ctx[i]) * float64(hkv*hd*2*2)
		for p := ctx[i] - newTok[i]; p < ctx[i]; p++ {
			bytes += float64(2 * hq * hd * 2)
			flops += 4 * float64(p+1) * float64(hq*hd)
		}
	}
	return bytes, flops
}

// attnCase writes a random K/V history through RoPEWriteKV (a prefill of
// the whole context), then runs RoPEWriteKV + Attention for the step's rows
// (on a backend that can poison, Attention twice with the output poisoned
// between: what a kernel leaves for its next call, such as split counters,
// must not change the second).
func attnCase(name string, newTok, ctx []int, hq, hkv, hd int) opCase {
	return attnCaseBS(name, newTok, ctx, hq, hkv, hd, 16)
}

// attnCaseBS is attnCase over a KV cache of blocks of bs tokens.
func attnCaseBS(name string, newTok, ctx []int, hq, hkv, hd, bs int) opCase {
	rows := 0
	for i := range ctx {
		rows += newTok[i]
	}
	bytes, flops := attnWork(newTok, ctx, hq, hkv, hd)
	return opCase{name: name, tol: bfTol, bytes: bytes, flops: flops,
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			nb := 0
			for _, c := range ctx {
				nb += (c + bs - 1) / bs
			}
			spec := backend.KVCacheSpec{Layers: 2, NumBlocks: nb + 3, BlockSize: bs, KVHeads: hkv, HeadDim: hd, DType: be.ActivationDType()}
			cache, err := be.NewKVCache(spec)
			if err != nil {
				return nil, err
			}
			rope := ropeFor(hd)
			width := (hq + 2*hkv) * hd
			full := paged(r, ctx, ctx, bs, spec.NumBlocks)
			var e errs
			st, err := be.Stage(full)
			if err != nil {
				return nil, err
			}
			qkv := e.t(actUp(be, []int{len(full.Tokens), width}, randVals(r, len(full.Tokens)*width, 1)))
			qAll := e.t(be.Alloc(be.ActivationDType(), len(full.Tokens), hq*hd))
			if e.err != nil {
				return nil, e.err
			}
			if err := be.RoPEWriteKV(qAll, qkv, cache, 1, rope, st); err != nil {
				return nil, err
			}
			// the step: the last newTok[i] rows of each sequence (same slots)
			step := &backend.Batch{QueryStart: []int32{0}, BlockTables: full.BlockTables, ContextLen: full.ContextLen}
			for i := range ctx {
				q1 := int(full.QueryStart[i+1])
				for r0 := q1 - newTok[i]; r0 < q1; r0++ {
					step.Tokens = append(step.Tokens, full.Tokens[r0])
					step.Positions = append(step.Positions, full.Positions[r0])
					step.Slots = append(step.Slots, full.Slots[r0])
				}
				step.QueryStart = append(step.QueryStart, int32(len(step.Tokens)))
				step.LogitRows = append(step.LogitRows, int32(len(step.Tokens)-1))
			}
			if err := be.Sync(); err != nil {
				return nil, err
			}
			st2, err := be.Stage(step)
			if err != nil {
				return nil, err
			}
			qkv2 := e.t(actUp(be, []int{rows, width}, randVals(r, rows*width, 1)))
			q := e.t(be.Alloc(be.ActivationDType(), rows, hq*hd))
			out := e.t(be.Alloc(be.ActivationDType(), rows, hq*hd))
			if e.err != nil {
				return nil, e.err
			}
			scale := float32(1 / math.Sqrt(float64(hd)))
			return &prepared{run: func() error {
				if err := be.RoPEWriteKV(q, qkv2, cache, 1, rope, st2); err != nil {
					return err
				}
				if p, ok := be.(poisoner); ok {
					if err := be.Attention(out, q, cache, 1, scale, st2); err != nil {
						return err
					}
					if err := p.poison(out); err != nil {
						return err
					}
				}
				return be.Attention(out, q, cache, 1, scale, st2)
			}, outs: []backend.Tensor{q, out}}, nil
		}}
}

func opTable() []opCase {
	cases := []opCase{
		normCase(5, 128, false),
		normCase(3, 4096, false),
		normCase(7, 4096, true),
		normCase(2, 9000, true),  // longer than the register-held part of a row
		normCase(4, 8192, false), // the longest row held in registers (16-byte path)
		normCase(3, 100, true),   // D % 8 != 0: the scalar path
		matmulCase(1, 512, 256, backend.BF16, false),
		matmulCase(3, 384, 96, backend.F32, true),
		matmulCase(8, 520, 136, backend.BF16, true),
		matmulCase(17, 640, 128, backend.F32, false), // cuBLASLt
		matmulCase(64, 1024, 512, backend.BF16, true),
		matmulCase(1, 300, 100, backend.F32, false), // K not a multiple of 8
		fusedCase(1, 512, 256, true, false),
		fusedCase(3, 384, 4096, true, true),
		fusedCase(8, 250, 136, true, false),
		fusedCase(1, 256, 512, false, false),
		fusedCase(5, 96, 1024, false, true),
		fusedCase(8, 4096, 200, false, false),
		// the most rows the norm fusion takes at hidden 4096 and 3072
		fusedCase(5, 300, 4096, true, false),
		fusedCase(7, 200, 3072, true, true),
		// more rows than one wave of warps: each warp streams several
		fusedCase(2, 20000, 264, true, true),
		fusedCase(1, 24000, 512, false, false),
		matmulCase(2, 30000, 128, backend.BF16, true),
		attnCase("attention/prefill/gqa4", []int{37}, []int{37}, 8, 2, 16),
		attnCase("attention/mixed/mqa", []int{1, 9, 1}, []int{20, 40, 70}, 4, 1, 16),
		attnCase("attention/decode/hd64", []int{1, 1}, []int{300, 129}, 4, 2, 64),
		attnCase("attention/decode/hd128/g7", []int{1}, []int{1000}, 28, 4, 128),
		attnCase("attention/chunked-prefill/hd128", []int{24}, []int{200}, 32, 8, 128),
		// decode kernel: splits, a first token (context 1), GQA 4 and 1
		attnCase("attention/decode/b4/hd128", []int{1, 1, 1, 1}, []int{1500, 700, 33, 1}, 32, 8, 128),
		attnCase("attention/decode/mha/hd128", []int{1, 1}, []int{77, 520}, 4, 4, 128),
		attnCase("attention/decode/g8/hd64", []int{1, 1, 1}, []int{2100, 16, 300}, 16, 2, 64),
		// prefill kernel: several 64-row windows, a partial last one
		attnCase("attention/prefill/hd128", []int{300}, []int{300}, 8, 2, 128),
		attnCase("attention/prefill/hd64/mqa", []int{130}, []int{130}, 4, 1, 64),
		// mixed: decode rows and prefill runs sharing windows, a prefix
		// cached before a chunk, a 2-row sequence, a run across a window edge
		attnCase("attention/mixed/hd128", []int{1, 70, 1, 5, 1, 2}, []int{300, 150, 1000, 5, 64, 90}, 16, 4, 128),
		attnCase("attention/mixed/hd64", []int{1, 9, 1, 2}, []int{20, 40, 70, 2}, 4, 1, 64),
		// the default prefill kernel packs a KV group's query heads into
		// one tile of 128/G rows: G = 1 (two windows), 7 (not a power of
		// two, a chunk after a cached prefix), 8 with runs across windows
		attnCase("attention/prefill/mha/hd128", []int{200}, []int{200}, 4, 4, 128),
		attnCase("attention/chunked-prefill/g7/hd128", []int{50}, []int{333}, 14, 2, 128),
		attnCase("attention/mixed/g8/hd64", []int{1, 33, 20, 1}, []int{100, 33, 90, 7}, 16, 2, 64),
		// the generic kernel (the benchmarks' baseline) on the same shapes
		onVariant(attnCase("", []int{1, 70, 1, 5, 1, 2}, []int{300, 150, 1000, 5, 64, 90}, 16, 4, 128), 1, "attention/legacy/mixed/hd128"),
		onVariant(attnCase("", []int{1, 1, 1, 1}, []int{1500, 700, 33, 1}, 32, 8, 128), 1, "attention/legacy/decode/b4/hd128"),
		// RoPE of one token at Llama-3 8B shapes (5 head groups of 8 and the V block)
		attnCase("attention/decode/b1/hd128", []int{1}, []int{100}, 32, 8, 128),
		// batches of uneven contexts (a long one cut over many of the
		// balanced kernel's tasks), blocks of 12 tokens (not a power of
		// two), G = 16 (two query-head chunks a KV head)
		attnCaseBS("attention/decode/b7/bs12", ones(7), append(randCtx(1, 6, 1, 2000), 9000), 8, 2, 128, 12),
		attnCase("attention/decode/b64/mha/hd64", ones(64), randCtx(2, 64, 1, 2000), 2, 2, 64),
		attnCase("attention/decode/b256/hd64", ones(256), randCtx(3, 256, 1, 1200), 4, 1, 64),
		attnCase("attention/decode/g8/hd128", ones(3), []int{9000, 1, 4000}, 16, 2, 128),
		attnCase("attention/decode/g16/hd64", ones(3), []int{1, 2500, 300}, 16, 1, 64),
		attnCaseBS("attention/mixed/bs12", []int{1, 40, 1, 1, 3, 1}, []int{9000, 100, 1, 1500, 3, 777}, 8, 2, 128, 12),
	}
	// the balanced decode kernel (variants 4 and 5) and the split kernel
	// ordered heads first (6) on every case of the default kernels
	for _, c := range cases {
		if strings.HasPrefix(c.name, "attention/") && !strings.HasPrefix(c.name, "attention/legacy/") {
			for _, v := range []int{4, 5, 6} {
				cases = append(cases, onVariant(c, v, fmt.Sprintf("%s/v%d", c.name, v)))
			}
		}
	}
	cases = append(cases, siluCase(6, 352), siluCase(3, 100), headNormCase(5, 4, 2, 64), embedGatherCase(9, 640, 96))
	return cases
}

// ones is n ones: the new-token counts of n decode rows.
func ones(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// randCtx is n contexts drawn uniformly from [lo, hi] (a fixed seed: the
// table is the same in every run).
func randCtx(seed int64, n, lo, hi int) []int {
	r := rand.New(rand.NewSource(seed))
	v := make([]int, n)
	for i := range v {
		v[i] = lo + r.Intn(hi-lo+1)
	}
	return v
}

func siluCase(t, inter int) opCase {
	return opCase{name: fmt.Sprintf("silu_mul/T%d/I%d", t, inter), tol: bfTol, bytes: float64(t * inter * 6),
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			var e errs
			gu := e.t(actUp(be, []int{t, 2 * inter}, randVals(r, t*2*inter, 4)))
			out := e.t(be.Alloc(be.ActivationDType(), t, inter))
			if e.err != nil {
				return nil, e.err
			}
			return &prepared{run: func() error { return be.SiLUMul(out, gu) }, outs: []backend.Tensor{out}}, nil
		}}
}

func headNormCase(t, hq, hkv, hd int) opCase {
	width := (hq + 2*hkv) * hd
	return opCase{name: fmt.Sprintf("head_rmsnorm/T%d/hd%d", t, hd), tol: bfTol, bytes: float64(t * (hq + hkv) * hd * 4),
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			var e errs
			x := e.t(actUp(be, []int{t, width}, randVals(r, t*width, 3)))
			wq := e.t(actUp(be, []int{hd}, randVals(r, hd, 2)))
			wk := e.t(actUp(be, []int{hd}, randVals(r, hd, 2)))
			if e.err != nil {
				return nil, e.err
			}
			return &prepared{run: func() error {
				if err := be.HeadRMSNorm(x, 0, hq, hd, wq, 1e-6); err != nil {
					return err
				}
				return be.HeadRMSNorm(x, hq*hd, hkv, hd, wk, 1e-6)
			}, inout: []backend.Tensor{x}}, nil
		}}
}

// embedGatherCase embeds a step's tokens then gathers its logit rows.
func embedGatherCase(t, vocab, d int) opCase {
	return opCase{name: fmt.Sprintf("embed+gather/T%d/V%d/D%d", t, vocab, d), tol: 1e-6, bytes: float64(t * d * 4),
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			var e errs
			table := &backend.Weight{Rows: vocab, Cols: d, Data: e.t(upload(be, backend.BF16, []int{vocab, d}, randVals(r, vocab*d, 1)))}
			b := paged(r, []int{4, t - 4}, []int{4, t - 4}, 16, 4)
			for i := range b.Tokens {
				b.Tokens[i] = int32(r.Intn(vocab))
			}
			b.LogitRows = []int32{int32(t - 1), 0, 3}
			out := e.t(be.Alloc(be.ActivationDType(), t, d))
			g := e.t(be.Alloc(be.ActivationDType(), 3, d))
			if e.err != nil {
				return nil, e.err
			}
			st, err := be.Stage(b)
			if err != nil {
				return nil, err
			}
			return &prepared{run: func() error {
				if err := be.Embed(out, table, st); err != nil {
					return err
				}
				return be.GatherRows(g, out, st)
			}, outs: []backend.Tensor{out, g}}, nil
		}}
}

// devFiller is implemented by the CUDA backend: random fills on the device,
// for benchmark-sized tensors that would take seconds to make on the host.
type devFiller interface {
	fillRandom(t backend.Tensor, seed uint64, scale float32) error
}

// bigWeight makes a random bf16 weight on the device (benchmarks only).
func bigWeight(be backend.Backend, rows, cols int, seed uint64) (*backend.Weight, error) {
	f, ok := be.(devFiller)
	if !ok {
		return nil, fmt.Errorf("benchmark case needs device fills (%s)", be.Name())
	}
	t, err := be.Alloc(backend.BF16, rows, cols)
	if err != nil {
		return nil, err
	}
	return &backend.Weight{Data: t, Rows: rows, Cols: cols}, f.fillRandom(t, seed, 0.03)
}

// benchMatmul is a bench-only case on model shapes (weights filled on the
// device; too large for the CPU oracle in CI).
func benchMatmul(label string, t, rows, cols int, outDT backend.DType) opCase {
	c := matmulCase(t, rows, cols, outDT, false)
	c.name = "bench/" + label + "/" + c.name
	c.benchOnly = true
	c.prep = func(be backend.Backend, r *rand.Rand) (*prepared, error) {
		w, err := bigWeight(be, rows, cols, uint64(r.Int63()))
		if err != nil {
			return nil, err
		}
		var e errs
		x := e.t(actUp(be, []int{t, cols}, randVals(r, t*cols, 1)))
		out := e.t(be.Alloc(outDT, t, rows))
		if e.err != nil {
			return nil, e.err
		}
		return &prepared{run: func() error { return be.MatMul(out, x, w) }, outs: []backend.Tensor{out}}, nil
	}
	return c
}

// benchAttention times paged attention for sequences with newTok query
// rows each and ctx cached tokens (cache and q filled on the device), on
// the generic kernel when legacy is set.
func benchAttention(label string, newTok, ctx []int, hq, hkv, hd int, legacy bool) opCase {
	return benchAttentionSpread(label, newTok, ctx, hq, hkv, hd, legacy, 1)
}

// benchAttentionSpread is benchAttention on a cache spread times larger
// than the sequences need, their blocks scattered over all of it (as in a
// serving engine's cache).
func benchAttentionSpread(label string, newTok, ctx []int, hq, hkv, hd int, legacy bool, spread int) opCase {
	const bs = 16
	bytes, flops := attnWork(newTok, ctx, hq, hkv, hd)
	if legacy {
		label = "legacy-" + label
	}
	return opCase{name: "bench/attention-" + label, benchOnly: true, bytes: bytes, flops: flops,
		prep: func(be backend.Backend, r *rand.Rand) (*prepared, error) {
			f, ok := be.(devFiller)
			if !ok {
				return nil, fmt.Errorf("benchmark case needs device fills")
			}
			nb, rows := 0, 0
			for i := range ctx {
				nb += (ctx[i] + bs - 1) / bs
				rows += newTok[i]
			}
			cache, err := be.NewKVCache(backend.KVCacheSpec{Layers: 1, NumBlocks: nb * spread, BlockSize: bs, KVHeads: hkv, HeadDim: hd, DType: backend.BF16})
			if err != nil {
				return nil, err
			}
			st, err := be.Stage(paged(r, newTok, ctx, bs, nb*spread))
			if err != nil {
				return nil, err
			}
			var e errs
			q := e.t(be.Alloc(backend.BF16, rows, hq*hd))
			out := e.t(be.Alloc(backend.BF16, rows, hq*hd))
			if e.err != nil {
				return nil, e.err
			}
			if err := f.fillRandom(q, 5, 1); err != nil {
				return nil, err
			}
			if err := be.(interface {
				fillCache(backend.KVCache) error
			}).fillCache(cache); err != nil {
				return nil, err
			}
			scale := float32(1 / math.Sqrt(float64(hd)))
			return &prepared{run: func() error {
				if legacy {
					return withAttentionVariant(be, 1, func() error { return be.Attention(out, q, cache, 0, scale, st) })
				}
				return be.Attention(out, q, cache, 0, scale, st)
			}, outs: []backend.Tensor{out}, free: func() {
				be.FreeKVCache(cache)
				be.Free(q)
				be.Free(out)
			}}, nil
		}}
}

// benchDecodeAttention times decode attention: batch sequences of ctx
// cached tokens, one query row each.
func benchDecodeAttention(batch, ctx, hq, hkv, hd int, legacy bool) opCase {
	newTok, ctxs := make([]int, batch), make([]int, batch)
	for i := range ctxs {
		newTok[i], ctxs[i] = 1, ctx
	}
	return benchAttention(fmt.Sprintf("decode/b%d/ctx%d", batch, ctx), newTok, ctxs, hq, hkv, hd, legacy)
}

// benchPrefillAttention times prefill attention: seqs fresh prompts of n
// tokens each (every row a query row).
func benchPrefillAttention(seqs, n, hq, hkv, hd int, legacy bool) opCase {
	newTok, ctxs := make([]int, seqs), make([]int, seqs)
	for i := range ctxs {
		newTok[i], ctxs[i] = n, n
	}
	return benchAttention(fmt.Sprintf("prefill/%dx%d", seqs, n), newTok, ctxs, hq, hkv, hd, legacy)
}

// benchTable is the op table plus the bench-only model-shape cases
// (Llama-3.1-8B: hidden 4096, intermediate 14336, 32/8 heads of 128).
func benchTable() []opCase {
	cases := opTable()
	for _, t := range []int{1, 8} {
		cases = append(cases,
			benchMatmul("qkv", t, 6144, 4096, backend.BF16),
			benchMatmul("o", t, 4096, 4096, backend.BF16),
			benchMatmul("gate_up", t, 28672, 4096, backend.BF16),
			benchMatmul("down", t, 4096, 14336, backend.BF16),
		)
	}
	cases = append(cases,
		benchMatmul("lm_head", 1, 128256, 4096, backend.F32),
		benchMatmul("gate_up", 512, 28672, 4096, backend.BF16),
		benchMatmul("down", 2048, 4096, 14336, backend.BF16),
	)
	// attention on Llama-3.1-8B heads (32 query, 8 KV, 128 dims); the
	// legacy- cases run the generic kernel (the baseline) on a few shapes;
	// each decode case is followed by its /v4 and /v5 twins (the balanced
	// decode kernel) and /v6 (the split kernel ordered heads first), so
	// one run compares them:
	//   go test -tags cuda -run '^$' -bench 'Ops/bench/attention-decode' ./cuda/
	withBalanced := func(c opCase) []opCase {
		return []opCase{c, onVariant(c, 4, c.name+"/v4"), onVariant(c, 5, c.name+"/v5"), onVariant(c, 6, c.name+"/v6")}
	}
	cases = append(cases, withBalanced(benchDecodeAttention(1, 512, 32, 8, 128, false))...)
	for _, b := range []int{1, 16, 64, 256} {
		for _, ctx := range []int{1024, 8192, 32768} {
			if b*ctx <= 1<<21 { // at most 8 GiB of cache
				cases = append(cases, withBalanced(benchDecodeAttention(b, ctx, 32, 8, 128, false))...)
			}
		}
	}
	// the decode steps of 1000-in/1000-out serving: contexts spread over
	// 1000..2000 tokens
	for _, b := range []int{192, 256} {
		newTok, ctxs := make([]int, b), make([]int, b)
		for i := range ctxs {
			newTok[i], ctxs[i] = 1, 1000+i*1000/b
		}
		cases = append(cases, withBalanced(benchAttention(fmt.Sprintf("decode/b%d/ctx1000-2000", b), newTok, ctxs, 32, 8, 128, false))...)
	}
	// the same serving steps as the engine sees them: every row of a wave
	// at nearly one context (rows grow together), blocks scattered over a
	// cache 8x larger. Inside the engine the balanced kernel wins at 1,250
	// and loses at 2,000 (bench/cuda/results/2026-11-26-h100-s4/README.md);
	// these cases are meant to reproduce that off the engine.
	for _, bc := range [][2]int{{208, 1250}, {208, 1500}, {208, 2000}, {96, 2000}} {
		newTok, ctxs := make([]int, bc[0]), make([]int, bc[0])
		for i := range ctxs {
			newTok[i], ctxs[i] = 1, bc[1]
		}
		for _, spread := range []int{1, 2, 8} {
			label := fmt.Sprintf("decode/b%d/ctx%d-uniform/spread%d", bc[0], bc[1], spread)
			cases = append(cases, withBalanced(benchAttentionSpread(label, newTok, ctxs, 32, 8, 128, false, spread))...)
		}
	}
	for _, bc := range [][2]int{{1, 512}, {1, 32768}, {16, 8192}, {64, 8192}} {
		cases = append(cases, benchDecodeAttention(bc[0], bc[1], 32, 8, 128, true))
	}
	for _, legacy := range []bool{false, true} {
		for _, sn := range [][2]int{{1, 2048}, {8, 2048}, {64, 512}} {
			cases = append(cases, benchPrefillAttention(sn[0], sn[1], 32, 8, 128, legacy))
		}
	}
	return cases
}
