// Package cpu is the pure-Go implementation of backend.Backend: float32
// activations and accumulation, weights read in their checkpoint format
// (BF16, F16, F32, and the quantized FP8/INT8/INT4 formats) and widened to
// float32 a row at a time, work spread over goroutines by rows. It runs
// everywhere and is the oracle the CUDA kernels are tested against.
package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// Tensor is a CPU tensor. Float activations live in F32; every other dtype
// keeps its raw little-endian bytes in Raw.
type Tensor struct {
	dt    backend.DType
	shape []int
	// F32 holds the elements of an F32 tensor.
	F32 []float32
	// I32 holds the elements of an I32 tensor.
	I32 []int32
	// Raw holds the bytes of any other dtype.
	Raw []byte
}

// DType implements backend.Tensor.
func (t *Tensor) DType() backend.DType { return t.dt }

// Shape implements backend.Tensor.
func (t *Tensor) Shape() []int { return t.shape }

func (t *Tensor) rows() int {
	if len(t.shape) == 0 {
		return 1
	}
	return backend.Numel(t.shape[:len(t.shape)-1])
}

func (t *Tensor) cols() int {
	if len(t.shape) == 0 {
		return 1
	}
	return t.shape[len(t.shape)-1]
}

// Backend is the CPU backend. It is not safe for concurrent use.
type Backend struct {
	workers int
}

// New returns a CPU backend using all available cores.
func New() *Backend { return &Backend{workers: runtime.GOMAXPROCS(0)} }

// Name implements backend.Backend.
func (b *Backend) Name() string { return fmt.Sprintf("cpu (%d threads)", b.workers) }

// ActivationDType implements backend.Backend: activations are float32.
func (b *Backend) ActivationDType() backend.DType { return backend.F32 }

func checkShape(shape []int) (int, error) {
	n := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && n > math.MaxInt32/s) {
			return 0, fmt.Errorf("cpu: bad shape %v", shape)
		}
		n *= s
	}
	return n, nil
}

// Alloc implements backend.Backend.
func (b *Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	t := &Tensor{dt: dt, shape: append([]int(nil), shape...)}
	switch dt {
	case backend.F32:
		t.F32 = make([]float32, n)
	case backend.I32:
		t.I32 = make([]int32, n)
	default:
		t.Raw = make([]byte, dt.Bytes(n))
	}
	return t, nil
}

// Upload implements backend.Backend. F32 and I32 data are copied into typed
// slices; other dtypes keep their bytes (a copy, so the caller may unmap).
func (b *Backend) Upload(dt backend.DType, shape []int, data []byte) (backend.Tensor, error) {
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if len(data) != dt.Bytes(n) {
		return nil, fmt.Errorf("cpu: upload %s%v: %d bytes, want %d", dt, shape, len(data), dt.Bytes(n))
	}
	t := &Tensor{dt: dt, shape: append([]int(nil), shape...)}
	switch dt {
	case backend.F32:
		t.F32 = make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case backend.I32:
		t.I32 = make([]int32, n)
		for i := range t.I32 {
			t.I32[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
		}
	default:
		t.Raw = append([]byte(nil), data...)
	}
	return t, nil
}

// Download implements backend.Backend for F32, BF16 and F16 tensors.
func (b *Backend) Download(bt backend.Tensor) ([]float32, error) {
	t, err := asTensor(bt)
	if err != nil {
		return nil, err
	}
	switch t.dt {
	case backend.F32:
		return append([]float32(nil), t.F32...), nil
	case backend.BF16, backend.F16:
		out := make([]float32, backend.Numel(t.shape))
		widen(t.dt, t.Raw, out)
		return out, nil
	}
	return nil, fmt.Errorf("cpu: download of %s not supported", t.dt)
}

// View implements backend.Viewer: the view shares t's elements.
func (b *Backend) View(bt backend.Tensor, shape ...int) (backend.Tensor, error) {
	t, err := asTensor(bt)
	if err != nil {
		return nil, err
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if n > backend.Numel(t.shape) {
		return nil, fmt.Errorf("cpu: view %v of a %v tensor", shape, t.shape)
	}
	v := &Tensor{dt: t.dt, shape: append([]int(nil), shape...)}
	switch t.dt {
	case backend.F32:
		v.F32 = t.F32[:n:n]
	case backend.I32:
		v.I32 = t.I32[:n:n]
	default:
		if t.dt.Bits()*n%8 != 0 {
			return nil, fmt.Errorf("cpu: view of %d %s elements splits a byte", n, t.dt)
		}
		m := t.dt.Bytes(n)
		v.Raw = t.Raw[:m:m]
	}
	return v, nil
}

// Free implements backend.Backend; memory is garbage-collected.
func (b *Backend) Free(backend.Tensor) {}

// Sync implements backend.Backend; CPU ops are synchronous.
func (b *Backend) Sync() error { return nil }

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }

func asTensor(t backend.Tensor) (*Tensor, error) {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		return nil, fmt.Errorf("cpu: tensor %T is not a CPU tensor", t)
	}
	return c, nil
}

// f32 returns the float32 data of an F32 tensor with the given element count.
func f32(t backend.Tensor, what string, n int) ([]float32, error) {
	c, err := asTensor(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if c.dt != backend.F32 {
		return nil, fmt.Errorf("%s: dtype %s, want f32", what, c.dt)
	}
	if n >= 0 && len(c.F32) != n {
		return nil, fmt.Errorf("%s: %d elements, want %d", what, len(c.F32), n)
	}
	return c.F32, nil
}

// widen converts n 16-bit floats from raw into out.
func widen(dt backend.DType, raw []byte, out []float32) {
	u := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/2)
	if dt == backend.BF16 {
		for i := range out {
			out[i] = math.Float32frombits(uint32(u[i]) << 16)
		}
		return
	}
	for i := range out {
		out[i] = weights.F16ToF32(u[i])
	}
}

// parallel runs fn over [0,n) split into contiguous chunks, one per worker,
// with at least minChunk items per chunk.
func (b *Backend) parallel(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	workers := b.workers
	if minChunk < 1 {
		minChunk = 1
	}
	if max := (n + minChunk - 1) / minChunk; workers > max {
		workers = max
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
