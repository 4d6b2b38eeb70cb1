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
	"os"
	"strconv"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// Tensor is a device tensor. Its memory is device memory: ptr is never
// dereferenced on the host.
type Tensor struct {
	dt    backend.DType
	shape []int
	ptr   unsafe.Pointer
	bytes int64
	off   int64 // arena offset, or -1 when allocated on its own
	view  bool  // aliases another tensor's memory (View): Free only forgets it
}

// DType implements backend.Tensor.
func (t *Tensor) DType() backend.DType { return t.dt }

// Shape implements backend.Tensor.
func (t *Tensor) Shape() []int { return t.shape }

func (t *Tensor) numel() int { return backend.Numel(t.shape) }

func (t *Tensor) cols() int {
	if len(t.shape) == 0 {
		return 1
	}
	return t.shape[len(t.shape)-1]
}

func (t *Tensor) rows() int {
	if len(t.shape) == 0 {
		return 1
	}
	return backend.Numel(t.shape[:len(t.shape)-1])
}

// Backend runs the backend.Backend ops on one NVIDIA GPU, on one stream. It
// is not safe for concurrent use.
type Backend struct {
	opts    Options
	name    string
	smCount int
	stream  C.tk_stream
	blas    C.tk_blas

	arenaBase unsafe.Pointer
	arena     *arena

	// scratch for attention split-KV partials, grown outside graph capture
	attnWS      unsafe.Pointer
	attnWSBytes int64
	// attnWSRows: per head layout, the step size (rows) up to which attnWS
	// is known to hold any step's partials
	attnWSRows map[attnHeads]int

	st *step
	// gemvVariant selects a GEMV tuning (benchmarks compare them).
	gemvVariant int
	stageGen    int
	capturing   bool
	// graphLog records every capture and every drop (GraphEvents)
	graphLog  []GraphEvent
	graphs    map[string]C.tk_graph
	ropeCache map[string]*Tensor
	// ropeByPtr remembers the device frequencies of each RoPE value seen,
	// so the per-layer call skips re-encoding them (the map keeps the
	// pointer alive, so it cannot be reused by another value).
	ropeByPtr map[*backend.RoPE]*Tensor
	// smp holds the fused sampler's buffers (SampleBatch).
	smp sampler
	// prof times ops when Options.ProfileOps is set (profile.go)
	prof   opProfile
	closed bool
}

// Info describes the device a backend runs on.
type Info struct {
	Name                 string
	TotalBytes           int64
	FreeBytes            int64
	SMCount              int
	ComputeCapability    string
	RuntimeVersion       int
	DriverVersion        int
	ArenaBytes           int64
	BlasWorkspaceBytes   int64
	GPUMemoryUtilization float64
}

func deviceInfo(dev int) (Info, error) {
	var name [256]C.char
	var total, free C.size_t
	var sm, major, minor, rt, drv C.int
	if rc := C.tk_device_info(C.int(dev), &name[0], &total, &free, &sm, &major, &minor, &rt, &drv); rc != 0 {
		return Info{}, callError("device info", rc)
	}
	return Info{
		Name: C.GoString(&name[0]), TotalBytes: int64(total), FreeBytes: int64(free),
		SMCount: int(sm), ComputeCapability: fmt.Sprintf("%d.%d", major, minor),
		RuntimeVersion: int(rt), DriverVersion: int(drv),
	}, nil
}

// New opens device opts.Device and, when opts.GPUMemoryUtilization > 0,
// reserves the arena every tensor and KV cache is carved from.
func New(opts Options) (backend.Backend, error) { return Open(opts) }

// Open is New returning the concrete type (for graphs and device info).
func Open(opts Options) (*Backend, error) {
	var n C.int
	if rc := C.tk_device_count(&n); rc != 0 {
		return nil, callError("cudaGetDeviceCount", rc)
	}
	if opts.Device < 0 || opts.Device >= int(n) {
		return nil, fmt.Errorf("cuda: device %d not present (%d devices)", opts.Device, int(n))
	}
	if rc := C.tk_set_device(C.int(opts.Device)); rc != 0 {
		return nil, callError("cudaSetDevice", rc)
	}
	info, err := deviceInfo(opts.Device)
	if err != nil {
		return nil, err
	}
	b := &Backend{opts: opts, smCount: info.SMCount, graphs: map[string]C.tk_graph{}}
	// TOKAMAK_GEMV_VARIANT picks a GEMV tuning (kernels/gemv.cu), for comparisons
	if v, err := strconv.Atoi(os.Getenv("TOKAMAK_GEMV_VARIANT")); err == nil && v >= 0 {
		b.gemvVariant = v
	}
	b.name = fmt.Sprintf("cuda:%d %s", opts.Device, info.Name)
	if rc := C.tk_stream_create(&b.stream); rc != 0 {
		return nil, callError("cudaStreamCreate", rc)
	}
	ws := opts.BlasWorkspaceBytes
	if ws <= 0 {
		ws = 32 << 20
	}
	if rc := C.tk_blas_create(&b.blas, C.size_t(ws)); rc != 0 {
		b.Close()
		return nil, callError("cublasLtCreate", rc)
	}
	if u := opts.GPUMemoryUtilization; u > 0 {
		if u > 1 {
			b.Close()
			return nil, fmt.Errorf("cuda: gpu memory utilization %.2f outside (0,1]", u)
		}
		usedByOthers := info.TotalBytes - info.FreeBytes
		size := int64(u*float64(info.TotalBytes)) - usedByOthers - 512<<20 // headroom: runtime, graphs, scratch
		if size < 64<<20 {
			b.Close()
			return nil, fmt.Errorf("cuda: gpu memory utilization %.2f leaves %d MiB for the arena (%d MiB of %d MiB already in use)", u, size>>20, usedByOthers>>20, info.TotalBytes>>20)
		}
		var p unsafe.Pointer
		if rc := C.tk_malloc(&p, C.size_t(size)); rc != 0 {
			b.Close()
			return nil, callError(fmt.Sprintf("cudaMalloc(arena %d MiB)", size>>20), rc)
		}
		b.arenaBase, b.arena = p, newArena(size)
	}
	return b, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return b.name }

// ActivationDType implements backend.Backend: activations are bf16.
func (b *Backend) ActivationDType() backend.DType { return backend.BF16 }

// Info reports the device and the backend's memory configuration.
func (b *Backend) Info() (Info, error) {
	info, err := deviceInfo(b.opts.Device)
	if err != nil {
		return info, err
	}
	if b.arena != nil {
		info.ArenaBytes = b.arena.size
	}
	info.GPUMemoryUtilization = b.opts.GPUMemoryUtilization
	return info, nil
}

// FreeBytes is the largest allocation the backend can still make: the
// largest free range of the arena, or the device's free memory when there
// is no arena. The CLI sizes the KV cache from it.
func (b *Backend) FreeBytes() int64 {
	if b.arena != nil {
		var best int64
		for _, s := range b.arena.free {
			best = max(best, s.n)
		}
		return best
	}
	info, err := deviceInfo(b.opts.Device)
	if err != nil {
		return 0
	}
	return info.FreeBytes
}

func (b *Backend) allocBytes(n int64) (unsafe.Pointer, int64, error) {
	if b.closed {
		return nil, 0, fmt.Errorf("cuda: backend is closed")
	}
	if b.arena != nil {
		off, err := b.arena.alloc(n)
		if err != nil {
			return nil, 0, err
		}
		return unsafe.Add(b.arenaBase, off), off, nil
	}
	var p unsafe.Pointer
	if n < arenaAlign {
		n = arenaAlign
	}
	if rc := C.tk_malloc(&p, C.size_t(n)); rc != 0 {
		return nil, 0, callError(fmt.Sprintf("cudaMalloc(%d bytes)", n), rc)
	}
	return p, -1, nil
}

func (b *Backend) freeBytes(p unsafe.Pointer, off, n int64) {
	if p == nil || b.closed {
		return
	}
	if off >= 0 && b.arena != nil {
		b.arena.release(off, n)
		return
	}
	C.tk_free(p)
}

func checkShape(shape []int) (int, error) {
	n := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && n > math.MaxInt64/2/s) {
			return 0, fmt.Errorf("cuda: bad shape %v", shape)
		}
		n *= s
	}
	return n, nil
}

// Alloc implements backend.Backend.
func (b *Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	return b.alloc(dt, shape...)
}

func (b *Backend) alloc(dt backend.DType, shape ...int) (*Tensor, error) {
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	bytes := int64(dt.Bytes(n))
	p, off, err := b.allocBytes(bytes)
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %s%v: %w", dt, shape, err)
	}
	return &Tensor{dt: dt, shape: append([]int(nil), shape...), ptr: p, bytes: bytes, off: off}, nil
}

// Upload implements backend.Backend; the bytes keep their dtype.
func (b *Backend) Upload(dt backend.DType, shape []int, data []byte) (backend.Tensor, error) {
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if len(data) != dt.Bytes(n) {
		return nil, fmt.Errorf("cuda: upload %s%v: %d bytes, want %d", dt, shape, len(data), dt.Bytes(n))
	}
	t, err := b.alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		if rc := C.tk_memcpy_htod(t.ptr, unsafe.Pointer(&data[0]), C.size_t(len(data)), b.stream); rc != 0 {
			b.Free(t)
			return nil, callError("cudaMemcpyAsync(upload)", rc)
		}
		// the copy reads host memory the caller owns (and may unmap): wait
		if rc := C.tk_stream_sync(b.stream); rc != 0 {
			b.Free(t)
			return nil, callError("cudaStreamSynchronize(upload)", rc)
		}
	}
	return t, nil
}

// Download implements backend.Backend for f32, bf16, f16 and i32 tensors.
func (b *Backend) Download(bt backend.Tensor) ([]float32, error) {
	t, err := asTensor(bt, "download")
	if err != nil {
		return nil, err
	}
	n := t.numel()
	if t.dt == backend.F32 {
		// Logits are float32: copy straight into the result, no staging
		// buffer and no conversion loop (this is on every step's path).
		out := make([]float32, n)
		if n > 0 {
			if rc := C.tk_memcpy_dtoh(unsafe.Pointer(&out[0]), t.ptr, C.size_t(4*n), b.stream); rc != 0 {
				return nil, callError("cudaMemcpyAsync(download)", rc)
			}
		}
		return out, nil
	}
	raw := make([]byte, t.bytes)
	if len(raw) > 0 {
		if rc := C.tk_memcpy_dtoh(unsafe.Pointer(&raw[0]), t.ptr, C.size_t(len(raw)), b.stream); rc != 0 {
			return nil, callError("cudaMemcpyAsync(download)", rc)
		}
	}
	switch t.dt {
	case backend.BF16, backend.F16:
		out, err := weights.ToFloat32(t.dt, raw)
		if err != nil {
			return nil, fmt.Errorf("cuda: download: %w", err)
		}
		return out, nil
	case backend.I32:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("cuda: download of %s not supported", t.dt)
}

// Free implements backend.Backend. Freeing a view forgets it and leaves
// the memory to the tensor it views.
func (b *Backend) Free(bt backend.Tensor) {
	t, ok := bt.(*Tensor)
	if !ok || t == nil || t.ptr == nil {
		return
	}
	if !t.view {
		b.freeBytes(t.ptr, t.off, t.bytes)
	}
	t.ptr = nil
}

// View implements backend.Viewer: the view starts at t's first element.
// It is valid while t is; freeing it does not free t.
func (b *Backend) View(bt backend.Tensor, shape ...int) (backend.Tensor, error) {
	t, err := asTensor(bt, "view")
	if err != nil {
		return nil, err
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if n > t.numel() || t.dt.Bits()*n%8 != 0 {
		return nil, fmt.Errorf("cuda: view %s%v of a %v tensor", t.dt, shape, t.shape)
	}
	return &Tensor{dt: t.dt, shape: append([]int(nil), shape...), ptr: t.ptr, bytes: int64(t.dt.Bytes(n)), off: -1, view: true}, nil
}

// Sync implements backend.Backend.
func (b *Backend) Sync() error {
	if rc := C.tk_stream_sync(b.stream); rc != 0 {
		return callError("cudaStreamSynchronize", rc)
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	var err error
	if b.stream != nil {
		err = b.Sync()
	}
	for k, g := range b.graphs {
		C.tk_graph_destroy(g)
		delete(b.graphs, k)
	}
	if b.st != nil {
		b.st.release()
	}
	if b.attnWS != nil {
		C.tk_free(b.attnWS)
	}
	b.smp.free()
	b.prof.free()
	if b.blas != nil {
		C.tk_blas_destroy(b.blas)
	}
	if b.arenaBase != nil {
		C.tk_free(b.arenaBase)
	}
	if b.stream != nil {
		C.tk_stream_destroy(b.stream)
	}
	b.closed = true
	return err
}

func asTensor(t backend.Tensor, what string) (*Tensor, error) {
	c, ok := t.(*Tensor)
	if !ok || c == nil {
		return nil, fmt.Errorf("cuda: %s: tensor %T was not made by the CUDA backend", what, t)
	}
	if c.ptr == nil {
		return nil, fmt.Errorf("cuda: %s: tensor was freed", what)
	}
	return c, nil
}
