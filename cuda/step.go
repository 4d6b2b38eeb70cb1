//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// step holds the per-step data in persistent device buffers (fixed
// addresses, so that captured graphs read each new step's data). One int32
// buffer holds, at fixed offsets for the current capacities: tokens,
// positions, slots, row→sequence, logit rows, decode rows ([tokCap] each)
// and the padded block tables [seqCap, btStride]. It is filled from a pinned host
// mirror with a single copy per step.
type step struct {
	b      *backend.Batch
	dev    unsafe.Pointer
	host   unsafe.Pointer
	tokCap int
	seqCap int
	stride int
	words  int
	gen    int
	copied C.tk_event
	// decode is the number of decode rows (sequences with one query row)
	decode int
}

// Batch implements backend.Step.
func (s *step) Batch() *backend.Batch { return s.b }

func (s *step) section(i int) unsafe.Pointer {
	return unsafe.Add(s.dev, 4*i*s.tokCap)
}

func (s *step) tokens() unsafe.Pointer     { return s.section(0) }
func (s *step) positions() unsafe.Pointer  { return s.section(1) }
func (s *step) slots() unsafe.Pointer      { return s.section(2) }
func (s *step) rowSeq() unsafe.Pointer     { return s.section(3) }
func (s *step) logitRows() unsafe.Pointer  { return s.section(4) }
func (s *step) decodeRows() unsafe.Pointer { return s.section(5) }
func (s *step) tables() unsafe.Pointer     { return s.section(6) }

func (s *step) release() {
	if s.copied != nil {
		C.tk_event_sync(s.copied)
		C.tk_event_destroy(s.copied)
	}
	if s.dev != nil {
		C.tk_free(s.dev)
	}
	if s.host != nil {
		C.tk_host_free(s.host)
	}
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// Stage implements backend.Backend: it copies the batch into the persistent
// step buffers. Growing a buffer moves it, which invalidates captured graphs
// (they are re-captured on their next use).
func (b *Backend) Stage(batch *backend.Batch) (backend.Step, error) {
	if b.capturing {
		return nil, fmt.Errorf("cuda: stage during graph capture")
	}
	t, n := len(batch.Tokens), batch.NumSeqs()
	if t == 0 || n < 1 || len(batch.Positions) != t || len(batch.Slots) != t || len(batch.BlockTables) != n || len(batch.ContextLen) != n {
		return nil, fmt.Errorf("cuda: stage: inconsistent batch (%d tokens, %d sequences)", t, n)
	}
	if len(batch.LogitRows) > t {
		return nil, fmt.Errorf("cuda: stage: %d logit rows for %d tokens", len(batch.LogitRows), t)
	}
	stride := 1
	for _, bt := range batch.BlockTables {
		stride = max(stride, len(bt))
	}
	s := b.st
	if s == nil || t > s.tokCap || n > s.seqCap || stride > s.stride {
		ns := &step{tokCap: 64, seqCap: 16, stride: 64}
		if s != nil {
			ns.tokCap, ns.seqCap, ns.stride = s.tokCap, s.seqCap, s.stride
			s.release()
		}
		ns.tokCap = max(ns.tokCap, roundUp(t, 64))
		ns.seqCap = max(ns.seqCap, roundUp(n, 16))
		ns.stride = max(ns.stride, roundUp(stride, 64))
		ns.words = 6*ns.tokCap + ns.seqCap*ns.stride
		b.stageGen++
		ns.gen = b.stageGen
		if rc := C.tk_malloc(&ns.dev, C.size_t(4*ns.words)); rc != 0 {
			return nil, callError("cudaMalloc(step buffers)", rc)
		}
		if rc := C.tk_host_alloc(&ns.host, C.size_t(4*ns.words)); rc != 0 {
			C.tk_free(ns.dev)
			return nil, callError("cudaHostAlloc(step buffers)", rc)
		}
		if rc := C.tk_event_create(&ns.copied); rc != 0 {
			C.tk_free(ns.dev)
			C.tk_host_free(ns.host)
			return nil, callError("cudaEventCreate", rc)
		}
		b.st, s = ns, ns
	} else if rc := C.tk_event_sync(s.copied); rc != 0 { // the previous copy has read the mirror
		return nil, callError("cudaEventSynchronize(step)", rc)
	}
	h := unsafe.Slice((*int32)(s.host), s.words)
	copy(h[0:], batch.Tokens)
	copy(h[s.tokCap:], batch.Positions)
	copy(h[2*s.tokCap:], batch.Slots)
	rs := h[3*s.tokCap : 4*s.tokCap]
	dr := h[5*s.tokCap : 6*s.tokCap]
	s.decode = 0
	for i := 0; i < n; i++ {
		q0, q1 := int(batch.QueryStart[i]), int(batch.QueryStart[i+1])
		if q0 < 0 || q1 > t || q1 < q0 {
			return nil, fmt.Errorf("cuda: stage: bad query start for sequence %d", i)
		}
		for r := q0; r < q1; r++ {
			rs[r] = int32(i)
		}
		if q1 == q0+1 {
			dr[s.decode] = int32(q0)
			s.decode++
		}
	}
	copy(h[4*s.tokCap:], batch.LogitRows)
	tb := h[6*s.tokCap:]
	for i, bt := range batch.BlockTables {
		copy(tb[i*s.stride:(i+1)*s.stride], bt)
	}
	// only the used prefix of the table section travels
	words := 6*s.tokCap + n*s.stride
	if rc := C.tk_memcpy_htod(s.dev, s.host, C.size_t(4*words), b.stream); rc != 0 {
		return nil, callError("cudaMemcpyAsync(step)", rc)
	}
	if rc := C.tk_event_record(s.copied, b.stream); rc != 0 {
		return nil, callError("cudaEventRecord(step)", rc)
	}
	s.b = batch
	return s, nil
}

func (b *Backend) stepOf(st backend.Step) (*step, error) {
	s, ok := st.(*step)
	if !ok || s == nil || s != b.st {
		return nil, fmt.Errorf("cuda: step %T is not the backend's current staged step", st)
	}
	return s, nil
}

// kvCache is a paged cache in one device allocation: per layer, K then V,
// each [NumBlocks*BlockSize, KVHeads, HeadDim] bf16.
type kvCache struct {
	spec     backend.KVCacheSpec
	t        *Tensor
	perLayer int64 // bytes of one layer's K (or V)
}

func (c *kvCache) Spec() backend.KVCacheSpec { return c.spec }

func (c *kvCache) kv(layer int) (k, v unsafe.Pointer) {
	k = unsafe.Add(c.t.ptr, 2*int64(layer)*c.perLayer)
	return k, unsafe.Add(k, c.perLayer)
}

// NewKVCache implements backend.Backend (bf16 caches).
func (b *Backend) NewKVCache(spec backend.KVCacheSpec) (backend.KVCache, error) {
	if spec.DType != backend.BF16 {
		return nil, fmt.Errorf("cuda: kv cache dtype %s not supported (bf16 only)", spec.DType)
	}
	if spec.Layers <= 0 || spec.NumBlocks <= 0 || spec.BlockSize <= 0 || spec.KVHeads <= 0 || spec.HeadDim <= 0 || spec.HeadDim > 256 {
		return nil, fmt.Errorf("cuda: bad kv cache spec %+v", spec)
	}
	per := int64(spec.NumBlocks) * int64(spec.BlockSize) * int64(spec.KVHeads) * int64(spec.HeadDim) * 2
	t, err := b.alloc(backend.BF16, int(spec.Bytes()/2))
	if err != nil {
		return nil, fmt.Errorf("cuda: kv cache of %d MiB: %w", spec.Bytes()>>20, err)
	}
	return &kvCache{spec: spec, t: t, perLayer: per}, nil
}

// FreeKVCache implements backend.Backend. Captured graphs may write the
// cache, so they are dropped too (re-captured on their next use).
func (b *Backend) FreeKVCache(kv backend.KVCache) {
	c, ok := kv.(*kvCache)
	if !ok || c == nil || c.t == nil {
		return
	}
	b.dropGraphs("KV cache freed")
	b.Free(c.t)
	c.t = nil
}

func (b *Backend) cacheOf(kv backend.KVCache, layer int) (*kvCache, error) {
	c, ok := kv.(*kvCache)
	if !ok || c == nil {
		return nil, fmt.Errorf("cuda: kv cache %T was not made by the CUDA backend", kv)
	}
	if c.t == nil || c.t.ptr == nil {
		return nil, fmt.Errorf("cuda: kv cache was freed")
	}
	if layer < 0 || layer >= c.spec.Layers {
		return nil, fmt.Errorf("cuda: layer %d outside cache of %d layers", layer, c.spec.Layers)
	}
	return c, nil
}
