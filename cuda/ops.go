//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// gemvMaxTokens is the largest T that MatMul sends to the GEMV kernel
// rather than cuBLASLt (bf16 weights); measured in bench/cuda.
const gemvMaxTokens = 8

// attnWSTokens is the least step size (rows) for which the attention
// workspace is sized (see reserveAttention; split-KV stops at a few
// hundred rows on an H100, so larger steps need no more).
const attnWSTokens = 4096

func act(t backend.Tensor, what string, n int) (*Tensor, error) {
	c, err := asTensor(t, what)
	if err != nil {
		return nil, err
	}
	if c.dt != backend.BF16 {
		return nil, fmt.Errorf("cuda: %s: dtype %s, want bf16 activations", what, c.dt)
	}
	if n >= 0 && c.numel() != n {
		return nil, fmt.Errorf("cuda: %s: %d elements, want %d", what, c.numel(), n)
	}
	return c, nil
}

func floatParam(t backend.Tensor, what string, n int) (*Tensor, error) {
	c, err := asTensor(t, what)
	if err != nil {
		return nil, err
	}
	switch c.dt {
	case backend.F32, backend.BF16, backend.F16:
	default:
		return nil, fmt.Errorf("cuda: %s: dtype %s not supported", what, c.dt)
	}
	if n >= 0 && c.numel() != n {
		return nil, fmt.Errorf("cuda: %s: %d elements, want %d", what, c.numel(), n)
	}
	return c, nil
}

// Embed implements backend.Backend.
func (b *Backend) Embed(out backend.Tensor, table *backend.Weight, st backend.Step) error {
	s, err := b.stepOf(st)
	if err != nil {
		return err
	}
	if table == nil || table.Quantized() {
		return fmt.Errorf("cuda: embed: table must be an unquantized weight")
	}
	tt, err := floatParam(table.Data, "embed table", table.Rows*table.Cols)
	if err != nil {
		return err
	}
	t := len(s.b.Tokens)
	o, err := act(out, "embed out", t*table.Cols)
	if err != nil {
		return err
	}
	return callError("embed", C.tk_embed(o.ptr, tt.ptr, C.int(tt.dt), i32p(s.tokens()), C.int(t), C.int(table.Cols), C.int(table.Rows), b.stream))
}

// RMSNorm implements backend.Backend.
func (b *Backend) RMSNorm(out, x, w backend.Tensor, eps float32) error {
	xt, err := act(x, "rmsnorm x", -1)
	if err != nil {
		return err
	}
	d := xt.cols()
	o, err := act(out, "rmsnorm out", xt.numel())
	if err != nil {
		return err
	}
	wt, err := floatParam(w, "rmsnorm weight", d)
	if err != nil {
		return err
	}
	return callError("rmsnorm", C.tk_rmsnorm(o.ptr, xt.ptr, wt.ptr, C.int(wt.dt), C.int(xt.rows()), C.int(d), C.float(eps), b.stream))
}

// AddRMSNorm implements backend.Backend.
func (b *Backend) AddRMSNorm(out, residual, x, w backend.Tensor, eps float32) error {
	rt, err := act(residual, "add_rmsnorm residual", -1)
	if err != nil {
		return err
	}
	d := rt.cols()
	xt, err := act(x, "add_rmsnorm x", rt.numel())
	if err != nil {
		return err
	}
	o, err := act(out, "add_rmsnorm out", rt.numel())
	if err != nil {
		return err
	}
	wt, err := floatParam(w, "add_rmsnorm weight", d)
	if err != nil {
		return err
	}
	return callError("add_rmsnorm", C.tk_add_rmsnorm(o.ptr, rt.ptr, xt.ptr, wt.ptr, C.int(wt.dt), C.int(rt.rows()), C.int(d), C.float(eps), b.stream))
}

// HeadRMSNorm implements backend.Backend.
func (b *Backend) HeadRMSNorm(x backend.Tensor, colStart, heads, headDim int, w backend.Tensor, eps float32) error {
	xt, err := act(x, "head_rmsnorm x", -1)
	if err != nil {
		return err
	}
	cols := xt.cols()
	if colStart < 0 || heads <= 0 || headDim <= 0 || headDim > 256 || colStart+heads*headDim > cols {
		return fmt.Errorf("cuda: head_rmsnorm: columns [%d,%d) outside row of %d (head_dim %d, at most 256)", colStart, colStart+heads*headDim, cols, headDim)
	}
	wt, err := floatParam(w, "head_rmsnorm weight", headDim)
	if err != nil {
		return err
	}
	return callError("head_rmsnorm", C.tk_head_rmsnorm(xt.ptr, C.int(xt.rows()), C.int(cols), C.int(colStart), C.int(heads), C.int(headDim), wt.ptr, C.int(wt.dt), C.float(eps), b.stream))
}

// MatMul implements backend.Backend: bf16 x, unquantized f32/bf16/f16
// weights, bf16 or f32 out. Small T runs the GEMV kernel (bound by reading
// W), larger T with bf16 weights runs cuBLASLt.
func (b *Backend) MatMul(out, x backend.Tensor, w *backend.Weight) error {
	return b.matMul(out, x, w, nil, 0, false)
}

// gemvNormBytes is the shared memory a norm-fused GEMV may fill with its
// normalised x rows.
const gemvNormBytes = int(C.TK_GEMV_NORM_SMEM_BYTES)

// FusedLinearRows implements backend.FusedLinear: the GEMV kernel fuses for
// unquantized bf16 weights whose row length is a multiple of 8, up to
// gemvMaxTokens rows, and for the norm while the normalised rows fit its
// shared memory.
func (b *Backend) FusedLinearRows(w *backend.Weight, norm bool) int {
	if w == nil || w.Data == nil || w.Quantized() || w.Data.DType() != backend.BF16 || w.Cols%8 != 0 {
		return 0
	}
	if norm {
		return min(gemvMaxTokens, gemvNormBytes/(2*w.Cols))
	}
	return gemvMaxTokens
}

// NormMatMul implements backend.FusedLinear.
func (b *Backend) NormMatMul(out, x, norm backend.Tensor, eps float32, w *backend.Weight) error {
	if norm == nil {
		return fmt.Errorf("cuda: norm_matmul: nil norm weight")
	}
	return b.matMul(out, x, w, norm, eps, false)
}

// MatMulAdd implements backend.FusedLinear.
func (b *Backend) MatMulAdd(residual, x backend.Tensor, w *backend.Weight) error {
	return b.matMul(residual, x, w, nil, 0, true)
}

// matMul runs out = x · Wᵀ (+Bias) with optional fusions: norm != nil
// applies RMSNorm(x)·norm to x first; addResidual adds the product into out.
// The fused forms need FusedLinearRows(w) >= rows of x.
func (b *Backend) matMul(out, x backend.Tensor, w *backend.Weight, norm backend.Tensor, eps float32, addResidual bool) error {
	if w == nil || w.Data == nil {
		return fmt.Errorf("cuda: matmul: nil weight")
	}
	if w.Quantized() {
		return fmt.Errorf("cuda: matmul: quantized %s weights are not implemented on CUDA yet", w.Data.DType())
	}
	xt, err := act(x, "matmul x", -1)
	if err != nil {
		return err
	}
	if xt.cols() != w.Cols {
		return fmt.Errorf("cuda: matmul: x has %d columns, weight has %d", xt.cols(), w.Cols)
	}
	t := xt.rows()
	wt, err := floatParam(w.Data, "matmul weight", w.Rows*w.Cols)
	if err != nil {
		return err
	}
	o, err := asTensor(out, "matmul out")
	if err != nil {
		return err
	}
	if (o.dt != backend.F32 && o.dt != backend.BF16) || o.numel() != t*w.Rows {
		return fmt.Errorf("cuda: matmul out: %s with %d elements, want f32 or bf16 with %d", o.dt, o.numel(), t*w.Rows)
	}
	var bias unsafe.Pointer
	biasDT := C.int(0)
	if w.Bias != nil {
		bt, err := floatParam(w.Bias, "matmul bias", w.Rows)
		if err != nil {
			return err
		}
		bias, biasDT = bt.ptr, C.int(bt.dt)
	}
	if norm != nil || addResidual {
		if limit := b.FusedLinearRows(w, norm != nil); t > limit {
			return fmt.Errorf("cuda: fused matmul: %d rows of %s weights [%d, %d]: at most %d fuse", t, wt.dt, w.Rows, w.Cols, limit)
		}
		var normPtr unsafe.Pointer
		normDT := C.int(0)
		if norm != nil {
			nt, err := floatParam(norm, "matmul norm weight", w.Cols)
			if err != nil {
				return err
			}
			normPtr, normDT = nt.ptr, C.int(nt.dt)
		}
		if addResidual && o.dt != backend.BF16 {
			return fmt.Errorf("cuda: matmul add: residual is %s, want bf16", o.dt)
		}
		res := C.int(0)
		if addResidual {
			res = 1
		}
		return callError("gemv_fused", C.tk_gemv_fused(o.ptr, C.int(o.dt), xt.ptr, wt.ptr, C.int(wt.dt), bias, biasDT,
			normPtr, normDT, C.float(eps), res, C.int(t), C.int(w.Rows), C.int(w.Cols), C.int(b.gemvVariant), b.stream))
	}
	if t <= gemvMaxTokens || wt.dt != backend.BF16 {
		return callError("gemv", C.tk_gemv(o.ptr, C.int(o.dt), xt.ptr, wt.ptr, C.int(wt.dt), bias, biasDT, C.int(t), C.int(w.Rows), C.int(w.Cols), C.int(b.gemvVariant), b.stream))
	}
	if err := callError("cublasLt gemm", C.tk_blas_gemm(b.blas, o.ptr, C.int(o.dt), xt.ptr, wt.ptr, C.int(t), C.int(w.Rows), C.int(w.Cols), b.stream)); err != nil {
		return err
	}
	if bias != nil {
		return callError("add_bias", C.tk_add_bias(o.ptr, C.int(o.dt), bias, biasDT, C.int(t), C.int(w.Rows), b.stream))
	}
	return nil
}

// RoPEWriteKV implements backend.Backend.
func (b *Backend) RoPEWriteKV(q, qkv backend.Tensor, kv backend.KVCache, layer int, rope *backend.RoPE, st backend.Step) error {
	s, err := b.stepOf(st)
	if err != nil {
		return err
	}
	c, err := b.cacheOf(kv, layer)
	if err != nil {
		return err
	}
	hd, hkv := c.spec.HeadDim, c.spec.KVHeads
	if rope == nil || rope.HeadDim != hd || len(rope.InvFreq) != hd/2 {
		return fmt.Errorf("cuda: rope: rope for a different head_dim than the cache's %d", hd)
	}
	t := len(s.b.Tokens)
	src, err := act(qkv, "rope qkv", -1)
	if err != nil {
		return err
	}
	hq, err := backend.QKVHeads(src.numel(), t, hkv, hd)
	if err != nil {
		return fmt.Errorf("cuda: rope: %w", err)
	}
	qt, err := act(q, "rope q", t*hq*hd)
	if err != nil {
		return err
	}
	inv, err := b.invFreq(rope)
	if err != nil {
		return err
	}
	kp, vp := c.kv(layer)
	return callError("rope_write_kv", C.tk_rope_write_kv(qt.ptr, src.ptr, kp, vp, i32p(s.positions()), i32p(s.slots()), (*C.float)(inv), C.float(rope.AttnFactor), C.int(t), C.int(hq), C.int(hkv), C.int(hd), b.stream))
}

// invFreq returns a device copy of the rope frequencies, uploaded once per
// distinct RoPE value (the model passes the same one every layer).
func (b *Backend) invFreq(rope *backend.RoPE) (unsafe.Pointer, error) {
	if t, ok := b.ropeByPtr[rope]; ok {
		return t.ptr, nil
	}
	raw := make([]byte, 4*len(rope.InvFreq))
	for i, f := range rope.InvFreq {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	key := string(raw)
	if t, ok := b.ropeCache[key]; ok {
		b.rememberRoPE(rope, t)
		return t.ptr, nil
	}
	if b.capturing {
		return nil, fmt.Errorf("cuda: rope frequencies first seen during graph capture")
	}
	t, err := b.Upload(backend.F32, []int{len(rope.InvFreq)}, raw)
	if err != nil {
		return nil, fmt.Errorf("cuda: rope frequencies: %w", err)
	}
	if b.ropeCache == nil {
		b.ropeCache = map[string]*Tensor{}
	}
	b.ropeCache[key] = t.(*Tensor)
	b.rememberRoPE(rope, t.(*Tensor))
	return t.(*Tensor).ptr, nil
}

func (b *Backend) rememberRoPE(rope *backend.RoPE, t *Tensor) {
	if b.ropeByPtr == nil {
		b.ropeByPtr = map[*backend.RoPE]*Tensor{}
	}
	b.ropeByPtr[rope] = t
}

// Attention implements backend.Backend.
func (b *Backend) Attention(out, q backend.Tensor, kv backend.KVCache, layer int, scale float32, st backend.Step) error {
	s, err := b.stepOf(st)
	if err != nil {
		return err
	}
	c, err := b.cacheOf(kv, layer)
	if err != nil {
		return err
	}
	hd, hkv := c.spec.HeadDim, c.spec.KVHeads
	t := len(s.b.Tokens)
	qt, err := act(q, "attention q", -1)
	if err != nil {
		return err
	}
	hq := qt.numel() / (t * hd)
	if hq*t*hd != qt.numel() || hq%hkv != 0 {
		return fmt.Errorf("cuda: attention: q of %d elements is not %d rows of heads of %d grouped over %d kv heads", qt.numel(), t, hd, hkv)
	}
	o, err := act(out, "attention out", qt.numel())
	if err != nil {
		return err
	}
	splits := int(C.tk_attention_splits(C.int(t), C.int(hq), C.int(hkv), C.int(b.smCount)))
	if err := b.reserveAttention(attnHeads{hq, hkv, hd, int(C.tk_attention_variant())}, max(attnWSTokens, s.tokCap)); err != nil {
		return err
	}
	if need := int64(C.tk_attention_workspace(C.int(t), C.int(hq), C.int(hd), C.int(splits))); need > b.attnWSBytes {
		return fmt.Errorf("cuda: attention: %d-row step needs %d workspace bytes, reserved %d", t, need, b.attnWSBytes)
	}
	kp, vp := c.kv(layer)
	return callError("attention", C.tk_attention(o.ptr, qt.ptr, kp, vp, i32p(s.positions()), i32p(s.rowSeq()), i32p(s.tables()), C.int(s.stride), C.int(c.spec.BlockSize), C.float(scale), C.int(t), C.int(s.b.NumSeqs()), i32p(s.decodeRows()), C.int(s.decode), C.int(hq), C.int(hkv), C.int(hd), C.int(splits), b.attnWS, b.stream))
}

// attnHeads is a head layout (query heads, KV heads, head size) and the
// attention variant in force (whose split plan may differ), for which the
// attention workspace is sized.
type attnHeads struct{ hq, hkv, hd, variant int }

// reserveAttention grows the attention workspace, if needed, to hold the
// split-KV partials of any step of up to rows rows of heads h. A step's
// need depends on its row count through the split plan (it peaks at a
// middling count, not at the largest), so it is sized for every count at
// once: then no later step of these heads moves it. It is sized per head
// layout, not from whatever size the workspace already has: another
// layout (another model on the backend) may leave a workspace that holds
// this one's decode buckets but not its longer prefills, which would then
// grow it, and so drop every graph, after warm-up.
//
// Callers pass the staged step capacity (no step has more rows without
// restaging, which invalidates the graphs anyway), so a decoder warm-up
// that reserved the step buffers first reserves this for every later step.
func (b *Backend) reserveAttention(h attnHeads, rows int) error {
	if b.attnWSRows[h] >= rows {
		return nil
	}
	var need int64
	for r := 1; r <= rows; r++ {
		sp := C.tk_attention_splits(C.int(r), C.int(h.hq), C.int(h.hkv), C.int(b.smCount))
		need = max(need, int64(C.tk_attention_workspace(C.int(r), C.int(h.hq), C.int(h.hd), sp)))
	}
	if need > b.attnWSBytes {
		if b.capturing {
			return fmt.Errorf("cuda: attention workspace would grow during graph capture")
		}
		if b.attnWS != nil {
			// graphs captured with the old workspace would write freed memory
			b.dropGraphs(fmt.Sprintf("attention workspace %d -> %d bytes for %d heads of %d over %d kv heads, steps of up to %d rows",
				b.attnWSBytes, need, h.hq, h.hd, h.hkv, rows))
			if err := b.Sync(); err != nil {
				return err
			}
			C.tk_free(b.attnWS)
			b.attnWS, b.attnWSBytes = nil, 0
		}
		if rc := C.tk_malloc(&b.attnWS, C.size_t(need)); rc != 0 {
			return callError("cudaMalloc(attention workspace)", rc)
		}
		// the split counters at its start must begin at zero
		if rc := C.tk_memset(b.attnWS, 0, C.size_t(need), b.stream); rc != 0 {
			return callError("cudaMemsetAsync(attention workspace)", rc)
		}
		b.attnWSBytes = need
	}
	if b.attnWSRows == nil {
		b.attnWSRows = map[attnHeads]int{}
	}
	b.attnWSRows[h] = rows
	return nil
}

// setAttentionVariant picks the attention kernels (0 default, 1 the generic
// CUDA-core kernel, the baseline; 2 the first fast version; 4 and 5 the
// balanced decode kernel, see tk_set_attention_variant) and returns the
// previous choice (benchmarks compare them; process-wide). The workspace
// plan depends on the variant (4 and 5 size it by their grid), so the
// reservations are kept per variant.
func (b *Backend) setAttentionVariant(v int) int {
	return int(C.tk_set_attention_variant(C.int(v)))
}

// SiLUMul implements backend.Backend.
func (b *Backend) SiLUMul(out, gu backend.Tensor) error {
	g, err := act(gu, "silu_mul gu", -1)
	if err != nil {
		return err
	}
	inter := g.cols() / 2
	if inter*2 != g.cols() {
		return fmt.Errorf("cuda: silu_mul: odd width %d", g.cols())
	}
	o, err := act(out, "silu_mul out", g.rows()*inter)
	if err != nil {
		return err
	}
	return callError("silu_mul", C.tk_silu_mul(o.ptr, g.ptr, C.int(g.rows()), C.int(inter), b.stream))
}

// GatherRows implements backend.Backend.
func (b *Backend) GatherRows(out, x backend.Tensor, st backend.Step) error {
	s, err := b.stepOf(st)
	if err != nil {
		return err
	}
	xt, err := asTensor(x, "gather_rows x")
	if err != nil {
		return err
	}
	if xt.dt != backend.BF16 && xt.dt != backend.F32 {
		return fmt.Errorf("cuda: gather_rows: dtype %s not supported", xt.dt)
	}
	n := len(s.b.LogitRows)
	cols := xt.cols()
	o, err := asTensor(out, "gather_rows out")
	if err != nil {
		return err
	}
	if o.dt != xt.dt || o.numel() != n*cols {
		return fmt.Errorf("cuda: gather_rows out: %s with %d elements, want %s with %d", o.dt, o.numel(), xt.dt, n*cols)
	}
	for _, r := range s.b.LogitRows {
		if r < 0 || int(r) >= xt.rows() {
			return fmt.Errorf("cuda: gather_rows: row %d out of range [0,%d)", r, xt.rows())
		}
	}
	if n == 0 {
		return nil
	}
	return callError("gather_rows", C.tk_gather_rows(o.ptr, xt.ptr, C.int(xt.dt), i32p(s.logitRows()), C.int(n), C.int(cols), C.int(xt.rows()), b.stream))
}

// SetGEMMTuning implements backend.GEMMTuner (tk_blas_set_tuning).
func (b *Backend) SetGEMMTuning(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	return callError("tk_blas_set_tuning", C.tk_blas_set_tuning(b.blas, v))
}
