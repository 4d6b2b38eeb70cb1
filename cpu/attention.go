package cpu

import (
	"fmt"
	"math"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// kvCache stores, per layer, K and V as float32 [slots, KVHeads, HeadDim].
type kvCache struct {
	spec  backend.KVCacheSpec
	k, v  [][]float32
	freed bool
}

func (c *kvCache) Spec() backend.KVCacheSpec { return c.spec }

// NewKVCache implements backend.Backend. The CPU cache holds float32.
func (b *Backend) NewKVCache(spec backend.KVCacheSpec) (backend.KVCache, error) {
	if spec.DType != backend.F32 {
		return nil, fmt.Errorf("cpu: kv cache dtype %s not supported (f32 only)", spec.DType)
	}
	if spec.Layers <= 0 || spec.NumBlocks <= 0 || spec.BlockSize <= 0 || spec.KVHeads <= 0 || spec.HeadDim <= 0 {
		return nil, fmt.Errorf("cpu: bad kv cache spec %+v", spec)
	}
	per := int64(spec.NumBlocks) * int64(spec.BlockSize) * int64(spec.KVHeads) * int64(spec.HeadDim)
	if per > math.MaxInt32 {
		return nil, fmt.Errorf("cpu: kv cache of %d elements per layer is too large", per)
	}
	c := &kvCache{spec: spec, k: make([][]float32, spec.Layers), v: make([][]float32, spec.Layers)}
	for l := range c.k {
		c.k[l] = make([]float32, per)
		c.v[l] = make([]float32, per)
	}
	return c, nil
}

// FreeKVCache implements backend.Backend: the cache's slices are dropped
// for the garbage collector and later ops on it fail.
func (b *Backend) FreeKVCache(kv backend.KVCache) {
	if c, ok := kv.(*kvCache); ok && c != nil {
		c.k, c.v, c.freed = nil, nil, true
	}
}

func cacheOf(kv backend.KVCache, layer int) (*kvCache, error) {
	c, ok := kv.(*kvCache)
	if !ok || c == nil {
		return nil, fmt.Errorf("cpu: kv cache %T was not made by the CPU backend", kv)
	}
	if c.freed {
		return nil, fmt.Errorf("cpu: kv cache was freed")
	}
	if layer < 0 || layer >= c.spec.Layers {
		return nil, fmt.Errorf("cpu: layer %d outside cache of %d layers", layer, c.spec.Layers)
	}
	return c, nil
}

// rotate applies the rotate-half rotary embedding to one head in place.
func rotate(h []float32, pos int32, rope *backend.RoPE) {
	half := len(h) / 2
	for i := 0; i < half; i++ {
		angle := float32(pos) * rope.InvFreq[i]
		c := float32(math.Cos(float64(angle))) * rope.AttnFactor
		s := float32(math.Sin(float64(angle))) * rope.AttnFactor
		x0, x1 := h[i], h[i+half]
		h[i] = x0*c - x1*s
		h[i+half] = x1*c + x0*s
	}
}

// RoPEWriteKV implements backend.Backend.
func (b *Backend) RoPEWriteKV(q, qkv backend.Tensor, kv backend.KVCache, layer int, rope *backend.RoPE, st backend.Step) error {
	batch, err := batchOf(st)
	if err != nil {
		return err
	}
	c, err := cacheOf(kv, layer)
	if err != nil {
		return err
	}
	hd, hkv := c.spec.HeadDim, c.spec.KVHeads
	if rope.HeadDim != hd || len(rope.InvFreq) != hd/2 {
		return fmt.Errorf("cpu: rope for head_dim %d (%d freqs), cache head_dim %d", rope.HeadDim, len(rope.InvFreq), hd)
	}
	t := len(batch.Tokens)
	src, err := f32(qkv, "cpu: rope qkv", -1)
	if err != nil {
		return err
	}
	hq, err := backend.QKVHeads(len(src), t, hkv, hd)
	if err != nil {
		return fmt.Errorf("cpu: rope: %w", err)
	}
	width := len(src) / t
	qs, err := f32(q, "cpu: rope q", t*hq*hd)
	if err != nil {
		return err
	}
	slots := c.spec.NumBlocks * c.spec.BlockSize
	for r := 0; r < t; r++ {
		row := src[r*width : (r+1)*width]
		pos := batch.Positions[r]
		for h := 0; h < hq; h++ {
			dst := qs[(r*hq+h)*hd : (r*hq+h+1)*hd]
			copy(dst, row[h*hd:(h+1)*hd])
			rotate(dst, pos, rope)
		}
		slot := int(batch.Slots[r])
		if slot < 0 || slot >= slots {
			return fmt.Errorf("cpu: rope: slot %d outside cache of %d", slot, slots)
		}
		kd := c.k[layer][slot*hkv*hd : (slot+1)*hkv*hd]
		vd := c.v[layer][slot*hkv*hd : (slot+1)*hkv*hd]
		copy(kd, row[hq*hd:(hq+hkv)*hd])
		copy(vd, row[(hq+hkv)*hd:])
		for h := 0; h < hkv; h++ {
			rotate(kd[h*hd:(h+1)*hd], pos, rope)
		}
	}
	return nil
}

// Attention implements backend.Backend. Each (row, head) pair is one unit
// of work: scores over the row's visible positions, a float32 softmax with
// the maximum subtracted, then the weighted sum of V.
func (b *Backend) Attention(out, q backend.Tensor, kv backend.KVCache, layer int, scale float32, st backend.Step) error {
	batch, err := batchOf(st)
	if err != nil {
		return err
	}
	c, err := cacheOf(kv, layer)
	if err != nil {
		return err
	}
	hd, hkv, bs := c.spec.HeadDim, c.spec.KVHeads, c.spec.BlockSize
	t := len(batch.Tokens)
	qs, err := f32(q, "cpu: attention q", -1)
	if err != nil {
		return err
	}
	hq := len(qs) / (t * hd)
	if hq*t*hd != len(qs) || hq%hkv != 0 {
		return fmt.Errorf("cpu: attention: q of %d elements is not %d rows of heads of %d grouped over %d kv heads", len(qs), t, hd, hkv)
	}
	o, err := f32(out, "cpu: attention out", len(qs))
	if err != nil {
		return err
	}
	seqOf := make([]int, t)
	for i := 0; i+1 < len(batch.QueryStart); i++ {
		for r := batch.QueryStart[i]; r < batch.QueryStart[i+1]; r++ {
			seqOf[r] = i
		}
	}
	for r := 0; r < t; r++ {
		if n := int(batch.Positions[r]) + 1; n < 1 || (n+bs-1)/bs > len(batch.BlockTables[seqOf[r]]) {
			return fmt.Errorf("cpu: attention: row %d sees %d positions beyond its block table", r, n)
		}
	}
	group := hq / hkv
	b.parallel(t*hq, 1, func(lo, hi int) {
		scores := make([]float32, 0, 256)
		for u := lo; u < hi; u++ {
			r, h := u/hq, u%hq
			table := batch.BlockTables[seqOf[r]]
			n := int(batch.Positions[r]) + 1
			qh := qs[(r*hq+h)*hd : (r*hq+h+1)*hd]
			kh := h / group
			scores = scores[:0]
			maxS := float32(math.Inf(-1))
			for p := 0; p < n; p++ {
				slot := int(table[p/bs])*bs + p%bs
				s := dot(qh, c.k[layer][(slot*hkv+kh)*hd:(slot*hkv+kh+1)*hd]) * scale
				scores = append(scores, s)
				maxS = max(maxS, s)
			}
			var sum float32
			for i, s := range scores {
				e := float32(math.Exp(float64(s - maxS)))
				scores[i] = e
				sum += e
			}
			dst := o[(r*hq+h)*hd : (r*hq+h+1)*hd]
			clear(dst)
			for p, e := range scores {
				slot := int(table[p/bs])*bs + p%bs
				vh := c.v[layer][(slot*hkv+kh)*hd : (slot*hkv+kh+1)*hd]
				wgt := e / sum
				for i, v := range vh {
					dst[i] += wgt * v
				}
			}
		}
	})
	return nil
}
