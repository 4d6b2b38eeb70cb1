// Package backend is the contract between the model and the machines that
// run it. The Llama-family forward pass in engine/model is written once
// against Backend; cpu (pure Go) and cuda (cgo over kernels/) implement it.
//
// The op set is deliberately small and coarse: the model never loops over
// elements, and each op is one that a GPU runs as one kernel (or one GEMM).
// Paged attention and quantized matmul are first-class ops.
//
// Layout conventions, for every op:
//   - tensors are dense, row-major; a 2-D activation [T, D] holds one row per
//     token of the step (T tokens over all sequences of the batch);
//   - activations use the backend's ActivationDType (float32 on the CPU,
//     bfloat16 on CUDA); logits are always float32;
//   - the per-step data (token ids, positions, KV slots, block tables) is
//     staged once per step with Stage and passed to the ops that need it.
package backend

import (
	"errors"
	"fmt"
)

// DType is an element type of a tensor.
type DType int

// Element types. FP8 is E4M3 (the OCP format used by Hopper); I4 packs two
// signed 4-bit values per byte, low nibble first.
const (
	F32 DType = iota
	BF16
	F16
	I32
	I64
	FP8E4M3
	I8
	I4
)

var dtypeNames = [...]string{"f32", "bf16", "f16", "i32", "i64", "fp8e4m3", "i8", "i4"}

// String returns the short lower-case name of the dtype ("bf16").
func (d DType) String() string {
	if int(d) >= 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Bits returns the storage size of one element in bits.
func (d DType) Bits() int {
	switch d {
	case F32, I32:
		return 32
	case BF16, F16:
		return 16
	case I64:
		return 64
	case FP8E4M3, I8:
		return 8
	case I4:
		return 4
	}
	return 0
}

// Bytes returns the storage size of n elements in bytes (rounded up).
func (d DType) Bytes(n int) int { return (n*d.Bits() + 7) / 8 }

// Tensor is a buffer owned by a backend. Its contents are only reachable
// through the backend that made it (Download); a Tensor must not be passed
// to another backend.
type Tensor interface {
	// DType is the element type.
	DType() DType
	// Shape is the row-major shape; callers must not modify it.
	Shape() []int
}

// Numel returns the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// Weight is a linear layer's weight matrix, W with Rows outputs and Cols
// inputs (the Hugging Face [out, in] layout), possibly quantized.
//
// For BF16/F16/F32 weights, Data is [Rows, Cols] and Scales is nil.
// For FP8E4M3 and I8 weights, Data is [Rows, Cols] and Scales is float32
// [Rows] (per output channel) when GroupSize is 0, or [Rows, Cols/GroupSize]
// when GroupSize > 0; the real weight is Data*Scale.
// For I4 weights, Data packs [Rows, Cols] signed values (Cols/2 bytes a row)
// and Scales is float32 [Rows, Cols/GroupSize]; GroupSize must divide Cols.
// Bias, if not nil, is [Rows] in the activation dtype or float32.
type Weight struct {
	Data      Tensor
	Scales    Tensor
	Bias      Tensor
	Rows      int
	Cols      int
	GroupSize int
}

// Quantized reports whether the weight carries scales.
func (w *Weight) Quantized() bool { return w.Scales != nil }

// RoPE describes rotary position embedding in the rotate-half ("NeoX")
// form that Hugging Face Llama-family models use. InvFreq already includes
// any frequency scaling (linear, llama3, yarn); AttnFactor multiplies cos and
// sin (1 except for yarn). A position p rotates pair (i, i+HeadDim/2) by the
// angle p*InvFreq[i].
type RoPE struct {
	HeadDim    int
	InvFreq    []float32
	AttnFactor float32
}

// Batch is the host-side description of one forward step: the new tokens of
// every sequence in the step, laid out sequence after sequence.
//
// The KV cache is paged: slot s of the cache is offset s%BlockSize of block
// s/BlockSize. A sequence's block table lists its blocks in order, so its
// token at position p lives in slot BlockTables[i][p/BlockSize]*BlockSize +
// p%BlockSize.
type Batch struct {
	// Tokens are the token ids, one per row of the step.
	Tokens []int32
	// Positions are the absolute positions of the tokens in their sequence.
	Positions []int32
	// Slots are the cache slots where each token's K and V are written.
	Slots []int32
	// QueryStart has len(sequences)+1 entries: sequence i owns rows
	// QueryStart[i] .. QueryStart[i+1]-1.
	QueryStart []int32
	// ContextLen is, per sequence, the number of tokens in the cache once
	// this step's tokens are written (cached prefix + new tokens).
	ContextLen []int32
	// BlockTables lists each sequence's cache blocks in order.
	BlockTables [][]int32
	// LogitRows are the rows whose logits the step returns, in order
	// (usually the last row of each sequence; every row for a full-prompt
	// scoring pass).
	LogitRows []int32
}

// NumSeqs returns the number of sequences in the batch.
func (b *Batch) NumSeqs() int { return len(b.QueryStart) - 1 }

// Validate checks the batch's internal consistency against a cache of
// numBlocks blocks of blockSize tokens: lengths agree, rows are in range,
// positions are consistent with context lengths and block tables cover them.
func (b *Batch) Validate(numBlocks, blockSize int) error {
	t := len(b.Tokens)
	if t == 0 {
		return errors.New("batch: no tokens")
	}
	if len(b.Positions) != t || len(b.Slots) != t {
		return fmt.Errorf("batch: %d tokens but %d positions and %d slots", t, len(b.Positions), len(b.Slots))
	}
	n := b.NumSeqs()
	if n < 1 || len(b.ContextLen) != n || len(b.BlockTables) != n {
		return fmt.Errorf("batch: %d query starts, %d context lengths, %d block tables", len(b.QueryStart), len(b.ContextLen), len(b.BlockTables))
	}
	if b.QueryStart[0] != 0 || int(b.QueryStart[n]) != t {
		return fmt.Errorf("batch: query starts must run from 0 to %d", t)
	}
	for i := 0; i < n; i++ {
		q0, q1 := b.QueryStart[i], b.QueryStart[i+1]
		if q1 <= q0 {
			return fmt.Errorf("batch: sequence %d has no tokens", i)
		}
		if int(q1) > t {
			return fmt.Errorf("batch: sequence %d: query start %d past the %d rows", i, q1, t)
		}
		ctx := b.ContextLen[i]
		if ctx < q1-q0 {
			return fmt.Errorf("batch: sequence %d: context %d shorter than its %d new tokens", i, ctx, q1-q0)
		}
		if int(ctx) > len(b.BlockTables[i])*blockSize {
			return fmt.Errorf("batch: sequence %d: context %d exceeds its %d blocks", i, ctx, len(b.BlockTables[i]))
		}
		for _, blk := range b.BlockTables[i] {
			if blk < 0 || int(blk) >= numBlocks {
				return fmt.Errorf("batch: sequence %d: block %d out of range [0,%d)", i, blk, numBlocks)
			}
		}
		for r := q0; r < q1; r++ {
			want := ctx - (q1 - r)
			if b.Positions[r] != want {
				return fmt.Errorf("batch: row %d: position %d, want %d", r, b.Positions[r], want)
			}
			p := b.Positions[r]
			slot := b.BlockTables[i][int(p)/blockSize]*int32(blockSize) + p%int32(blockSize)
			if b.Slots[r] != slot {
				return fmt.Errorf("batch: row %d: slot %d, want %d", r, b.Slots[r], slot)
			}
		}
	}
	for _, r := range b.LogitRows {
		if r < 0 || int(r) >= t {
			return fmt.Errorf("batch: logit row %d out of range [0,%d)", r, t)
		}
	}
	return nil
}

// Step is a batch staged on a backend (for CUDA: copied into persistent
// device buffers). It is valid until the next Stage call on that backend.
type Step interface {
	// Batch returns the host description the step was staged from.
	Batch() *Batch
}

// KVCacheSpec sizes a paged KV cache.
type KVCacheSpec struct {
	Layers    int
	NumBlocks int
	BlockSize int
	KVHeads   int
	HeadDim   int
	// DType is the element type of cached K and V (activation dtype, or
	// FP8E4M3 for an FP8 cache).
	DType DType
}

// Bytes returns the memory the cache needs.
func (s KVCacheSpec) Bytes() int64 {
	return 2 * int64(s.Layers) * int64(s.NumBlocks) * int64(s.BlockSize) * int64(s.KVHeads) * int64(s.HeadDim) * int64(s.DType.Bits()) / 8
}

// KVCache is a paged K/V store owned by a backend: per layer, K and V of
// [NumBlocks*BlockSize slots, KVHeads, HeadDim].
type KVCache interface {
	Spec() KVCacheSpec
}

// Viewer is implemented by backends that can alias the leading elements of
// a tensor with another shape (the persistent buffers of graph-captured
// steps hand out their used rows this way).
type Viewer interface {
	// View returns a tensor of the given shape over the first
	// Numel(shape) elements of t, sharing its memory. Freeing the view does
	// nothing; it is valid while t is.
	View(t Tensor, shape ...int) (Tensor, error)
}

// GraphRunner is implemented by backends that can record a step's ops once
// and replay them (CUDA graphs). RunGraph runs the ops that fn enqueues
// under key: the first call per key (and staged step shape) runs fn and
// records it, later calls replay the recording without calling fn. fn must
// enqueue the same ops on the same tensors every time and read per-step
// data only through the step staged before the call.
type GraphRunner interface {
	RunGraph(key string, fn func() error) error
	// DropGraphs destroys every recording (after tensors they use are
	// freed); later RunGraph calls record again.
	DropGraphs()
}

// FusedLinear is implemented by backends whose small-batch matmul can take
// the RMSNorm before a projection and the residual add after it, saving a
// kernel and its launch gap per sublayer in decode steps. The results equal
// the separate ops up to the rounding of the norm's sum of squares.
type FusedLinear interface {
	// FusedLinearRows is the most rows (tokens) NormMatMul (norm) or
	// MatMulAdd (!norm) takes with weight w; 0 when w cannot be fused.
	FusedLinearRows(w *Weight, norm bool) int
	// NormMatMul writes out = RMSNorm(x)·norm · Wᵀ (+ Bias): MatMul of what
	// RMSNorm(·, x, norm, eps) would write, without writing it. out must
	// not overlap x.
	NormMatMul(out, x, norm Tensor, eps float32, w *Weight) error
	// MatMulAdd adds x · Wᵀ (+ Bias), rounded to the activation dtype, into
	// residual in place: what MatMul and AddRMSNorm's add would leave there.
	// residual must not overlap x.
	MatMulAdd(residual, x Tensor, w *Weight) error
}

// GEMMTuner is implemented by backends that can time alternative GEMM
// algorithms for a shape and keep the fastest. The model turns it on for
// its decode warm-up (the shapes every decode step reuses) and off after,
// so that serving never stalls to tune a new shape.
type GEMMTuner interface {
	// SetGEMMTuning turns tuning on (plans of decode-sized shapes are
	// timed on their next use) or off (new plans take the first choice).
	SetGEMMTuning(on bool) error
}

// OpTime is the device time charged to one op of the forward pass, summed
// over the steps of one kind ("decode": one query row per sequence;
// "prefill": steps that carry prompt tokens) and over layers.
type OpTime struct {
	Kind  string  `json:"kind"`
	Op    string  `json:"op"`
	Steps int     `json:"steps"`
	MS    float64 `json:"ms"`
}

// OpProfiler is implemented by backends that can time the ops of eager
// forward passes on the device (CUDA events between ops). The model calls
// ProfileBegin before a step's first op and ProfileMark after each op;
// both do nothing unless profiling was turned on when the backend was made,
// and nothing while a graph is being recorded.
type OpProfiler interface {
	// ProfileBegin starts a step of the given kind.
	ProfileBegin(kind string)
	// ProfileMark charges the device time since the previous mark of the
	// step to op.
	ProfileMark(op string)
	// OpProfile waits for the device and returns the totals so far,
	// grouped by kind, largest first; nil when profiling is off.
	OpProfile() ([]OpTime, error)
}

// Backend runs the ops of the Llama-family forward pass. Methods are not
// safe for concurrent use: one goroutine (the engine loop) drives a backend.
type Backend interface {
	// Name identifies the backend and device ("cpu", "cuda:0 NVIDIA H100").
	Name() string
	// ActivationDType is the dtype of the activations the backend computes in.
	ActivationDType() DType
	// Upload makes a tensor from host bytes in the dtype's little-endian
	// layout; len(data) must equal dt.Bytes(Numel(shape)).
	Upload(dt DType, shape []int, data []byte) (Tensor, error)
	// Alloc makes an uninitialised tensor.
	Alloc(dt DType, shape ...int) (Tensor, error)
	// Download copies a tensor to the host as float32 (any float dtype).
	Download(t Tensor) ([]float32, error)
	// Free releases a tensor; nil is ignored.
	Free(t Tensor)
	// NewKVCache allocates a paged KV cache.
	NewKVCache(spec KVCacheSpec) (KVCache, error)
	// FreeKVCache releases a cache's memory. Ops given the cache afterwards
	// fail with an error; freeing nil, a cache already freed or one of
	// another backend does nothing.
	FreeKVCache(c KVCache)
	// Stage prepares the per-step data of a batch.
	Stage(b *Batch) (Step, error)

	// Embed writes out[t,:] = table[Tokens[t],:] (table is [vocab, D]).
	Embed(out Tensor, table *Weight, st Step) error
	// RMSNorm writes out = x / rms(x) * w, row-wise, with rms over the last
	// dimension plus eps.
	RMSNorm(out, x, w Tensor, eps float32) error
	// AddRMSNorm adds x into residual in place (residual += x) and writes
	// out = RMSNorm(residual) * w.
	AddRMSNorm(out, residual, x, w Tensor, eps float32) error
	// MatMul writes out[T, Rows] = x[T, Cols] · Wᵀ (+ Bias).
	MatMul(out, x Tensor, w *Weight) error
	// HeadRMSNorm normalises, in place, each head-sized slice of the
	// columns [colStart, colStart+heads*headDim) of every row of x, with the
	// weight w [headDim] (Qwen3 q/k norm).
	HeadRMSNorm(x Tensor, colStart, heads, headDim int, w Tensor, eps float32) error
	// RoPEWriteKV takes the fused projection qkv [T, (Hq+2*Hkv)*headDim]
	// (q heads, then k heads, then v heads), writes rotated q to q
	// [T, Hq*headDim], and writes rotated k and plain v into the cache slots
	// of layer at the staged positions.
	RoPEWriteKV(q, qkv Tensor, cache KVCache, layer int, rope *RoPE, st Step) error
	// Attention computes causal paged attention for every row: row r of
	// sequence i attends to cache positions 0..Positions[r] of that
	// sequence, query head h reads KV head h/(Hq/Hkv). q is [T, Hq*headDim],
	// out is [T, Hq*headDim]; scale multiplies q·k.
	Attention(out, q Tensor, cache KVCache, layer int, scale float32, st Step) error
	// SiLUMul writes out[T, I] = silu(gu[:, :I]) * gu[:, I:] for gu [T, 2I].
	SiLUMul(out, gu Tensor) error
	// GatherRows writes out[i,:] = x[LogitRows[i],:].
	GatherRows(out, x Tensor, st Step) error
	// Sync waits until queued work has finished and reports its error.
	Sync() error
	// Close releases everything the backend holds.
	Close() error
}

// QKVHeads returns the number of query heads in a fused q/k/v projection of
// numel elements over rows tokens, with kvHeads K and V heads of headDim:
// the layout RoPEWriteKV takes. It fails when the sizes do not split so.
func QKVHeads(numel, rows, kvHeads, headDim int) (int, error) {
	if rows <= 0 || headDim <= 0 || numel%rows != 0 {
		return 0, fmt.Errorf("qkv of %d elements does not split into %d rows", numel, rows)
	}
	width := numel / rows
	hq := width/headDim - 2*kvHeads
	if hq <= 0 || width != (hq+2*kvHeads)*headDim {
		return 0, fmt.Errorf("qkv rows of %d elements do not split into query heads and %d K and V heads of %d", width, kvHeads, headDim)
	}
	return hq, nil
}
