//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// RunGraph runs the ops that fn enqueues as one CUDA graph. The first call
// for a key (and the staged step's shape) runs fn directly — a warm-up that
// sizes every scratch buffer and picks the GEMM plans — and then captures
// fn into a graph; later calls replay that graph without calling fn.
//
// fn must enqueue the same ops on the same tensors every time, reading
// per-step data only through the step staged before the call (Stage writes
// it into persistent buffers at fixed addresses); it must not Stage,
// allocate, Download or Sync. The key should name everything else that
// changes the ops (e.g. "decode/b8"); the staged shape (tokens, sequences,
// logit rows) and the step buffers' generation are added to it here.
func (b *Backend) RunGraph(key string, fn func() error) error {
	s := b.st
	if s == nil || s.b == nil {
		return fmt.Errorf("cuda: graph %q: no staged step", key)
	}
	full := fmt.Sprintf("%s|t%d|s%d|l%d|g%d", key, len(s.b.Tokens), s.b.NumSeqs(), len(s.b.LogitRows), s.gen)
	if g, ok := b.graphs[full]; ok {
		return callError("cudaGraphLaunch", C.tk_graph_launch(g, b.stream))
	}
	if err := fn(); err != nil {
		return fmt.Errorf("cuda: graph %q warm-up: %w", key, err)
	}
	g, err := b.capture(fn)
	if err != nil {
		return fmt.Errorf("cuda: graph %q: %w", key, err)
	}
	b.graphs[full] = g
	b.captures++
	return nil
}

// GraphCaptures returns how many graphs RunGraph has captured since the
// backend was opened (replays do not count; a graph dropped and captured
// again counts twice).
func (b *Backend) GraphCaptures() int { return b.captures }

// capture records fn's ops into an instantiated graph without running them.
func (b *Backend) capture(fn func() error) (C.tk_graph, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if rc := C.tk_capture_begin(b.stream); rc != 0 {
		return nil, callError("cudaStreamBeginCapture", rc)
	}
	b.capturing = true
	ferr := fn()
	b.capturing = false
	var g C.tk_graph
	rc := C.tk_capture_end(b.stream, &g)
	if ferr != nil {
		if rc == 0 {
			C.tk_graph_destroy(g)
		}
		return nil, ferr
	}
	if rc != 0 {
		return nil, callError("cudaStreamEndCapture", rc)
	}
	return g, nil
}

// DropGraphs destroys every captured graph (after the tensors they use
// were freed or replaced); it waits for queued work first, so that no
// launched graph is destroyed while it runs.
func (b *Backend) DropGraphs() {
	if len(b.graphs) == 0 {
		return
	}
	_ = b.Sync()
	for k, g := range b.graphs {
		C.tk_graph_destroy(g)
		delete(b.graphs, k)
	}
}
