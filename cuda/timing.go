//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sort"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// timeMS runs fn warm times, then reps times, each timed on the stream with
// CUDA events, and returns the median milliseconds per run. A run's time
// includes the latency of launching its work (~5 µs a kernel on an H100).
func (b *Backend) timeMS(fn func() error, warm, reps int) (float64, error) {
	return b.timeRuns(fn, warm, reps, false)
}

// queueNS is how long timeQueuedMS holds the stream before each run: far
// more than the host takes to record an event and launch a kernel.
const queueNS = 50_000

// timeQueuedMS is timeMS with each run's work queued behind a wait on the
// device (tk_spin) that starts before the start event, so that the time
// is the device's alone, as when the work follows other work on its
// stream (a decode step), without the launch latency.
func (b *Backend) timeQueuedMS(fn func() error, warm, reps int) (float64, error) {
	return b.timeRuns(fn, warm, reps, true)
}

// spinWait queues a wait of ns nanoseconds on the device (tk_spin) on
// b's stream.
func (b *Backend) spinWait(ns uint64) error {
	return callError("spin_kernel", C.tk_spin(C.uint64_t(ns), b.stream))
}

func (b *Backend) timeRuns(fn func() error, warm, reps int, queued bool) (float64, error) {
	var start, end C.tk_event
	if rc := C.tk_event_create(&start); rc != 0 {
		return 0, callError("cudaEventCreate", rc)
	}
	defer C.tk_event_destroy(start)
	if rc := C.tk_event_create(&end); rc != 0 {
		return 0, callError("cudaEventCreate", rc)
	}
	defer C.tk_event_destroy(end)
	for i := 0; i < warm; i++ {
		if err := fn(); err != nil {
			return 0, err
		}
	}
	ts := make([]float64, 0, reps)
	for i := 0; i < reps; i++ {
		if queued {
			if err := b.spinWait(queueNS); err != nil {
				return 0, err
			}
		}
		if rc := C.tk_event_record(start, b.stream); rc != 0 {
			return 0, callError("cudaEventRecord", rc)
		}
		if err := fn(); err != nil {
			return 0, err
		}
		if rc := C.tk_event_record(end, b.stream); rc != 0 {
			return 0, callError("cudaEventRecord", rc)
		}
		if rc := C.tk_event_sync(end); rc != 0 {
			return 0, callError("cudaEventSynchronize", rc)
		}
		var ms C.float
		if rc := C.tk_event_elapsed_ms(&ms, start, end); rc != 0 {
			return 0, callError("cudaEventElapsedTime", rc)
		}
		ts = append(ts, float64(ms))
	}
	if len(ts) == 0 {
		return 0, fmt.Errorf("cuda: no timed runs")
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

// poison fills a tensor with NaN so that unwritten elements fail a check.
func (b *Backend) poison(t backend.Tensor) error {
	c, err := asTensor(t, "poison")
	if err != nil {
		return err
	}
	return callError("fill_const", C.tk_fill_const(c.ptr, C.int(c.dt), C.size_t(c.numel()), C.float(math.NaN()), b.stream))
}

// fillRandom fills a float tensor on the device with uniform values in
// [-scale, scale) (benchmark weights: no host round trip for gigabytes).
func (b *Backend) fillRandom(t backend.Tensor, seed uint64, scale float32) error {
	c, err := asTensor(t, "fill_random")
	if err != nil {
		return err
	}
	return callError("fill_random", C.tk_fill_random(c.ptr, C.int(c.dt), C.size_t(c.numel()), C.uint64_t(seed), C.float(scale), b.stream))
}

// CopyBandwidth measures device-to-device copy bandwidth in bytes per
// second, counting bytes read plus bytes written, over a buffer of the
// given size (the median of several copies).
func (b *Backend) CopyBandwidth(bytes int64) (float64, error) {
	src, err := b.alloc(backend.BF16, int(bytes/2))
	if err != nil {
		return 0, err
	}
	defer b.Free(src)
	dst, err := b.alloc(backend.BF16, int(bytes/2))
	if err != nil {
		return 0, err
	}
	defer b.Free(dst)
	if err := b.fillRandom(src, 1, 1); err != nil {
		return 0, err
	}
	ms, err := b.timeMS(func() error {
		return callError("cudaMemcpyAsync(dtod)", C.tk_memcpy_dtod(dst.ptr, src.ptr, C.size_t(src.bytes), b.stream))
	}, 2, 10)
	if err != nil {
		return 0, err
	}
	return 2 * float64(src.bytes) / (ms * 1e-3), nil
}

// fillCache fills every slot of a KV cache with random values (benchmarks).
func (b *Backend) fillCache(kv backend.KVCache) error {
	c, ok := kv.(*kvCache)
	if !ok {
		return fmt.Errorf("cuda: fill cache: %T is not a CUDA cache", kv)
	}
	return b.fillRandom(c.t, 77, 1)
}

// setPDL turns programmatic dependent launch of the op kernels on or off
// (benchmarks compare the two; graphs captured before keep their setting).
func (b *Backend) setPDL(on bool) {
	v := C.int(0)
	if on {
		v = 1
	}
	C.tk_set_pdl(v)
}
