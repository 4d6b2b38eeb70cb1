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
	full := fmt.Sprintf("%s|t%d|s%d|d%d|l%d|g%d", key, len(s.b.Tokens), s.b.NumSeqs(), s.decode, len(s.b.LogitRows), s.gen)
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
	b.graphLog = append(b.graphLog, GraphEvent{Key: full})
	return nil
}

// GraphEvent is one capture or one drop of captured graphs, recorded so
// that an unexpected capture can be explained (which key was new, or what
// dropped the graph it replaced).
type GraphEvent struct {
	// Key is the captured graph's full key (RunGraph's key, then the
	// staged shape and step-buffer generation: "|t8|s8|d8|l8|g2"); empty
	// for a drop.
	Key string
	// Dropped is how many graphs a drop destroyed; Why says what made
	// them stale.
	Dropped int
	Why     string
}

func (e GraphEvent) String() string {
	if e.Key != "" {
		return "capture " + e.Key
	}
	return fmt.Sprintf("drop %d graphs (%s)", e.Dropped, e.Why)
}

// GraphCaptures returns how many graphs RunGraph has captured since the
// backend was opened (replays do not count; a graph dropped and captured
// again counts twice).
func (b *Backend) GraphCaptures() int {
	n := 0
	for _, e := range b.graphLog {
		if e.Key != "" {
			n++
		}
	}
	return n
}

// GraphEvents returns every capture and drop since the backend was opened,
// oldest first (a copy). Captures happen at warm-up and after graphs went
// stale, so the list stays short; tests print its tail when a capture
// happens where only replays were expected.
func (b *Backend) GraphEvents() []GraphEvent {
	return append([]GraphEvent(nil), b.graphLog...)
}

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
func (b *Backend) DropGraphs() { b.dropGraphs("DropGraphs") }

// dropGraphs is DropGraphs, logging why (GraphEvents).
func (b *Backend) dropGraphs(why string) {
	if len(b.graphs) == 0 {
		return
	}
	b.graphLog = append(b.graphLog, GraphEvent{Dropped: len(b.graphs), Why: why})
	_ = b.Sync()
	for k, g := range b.graphs {
		C.tk_graph_destroy(g)
		delete(b.graphs, k)
	}
}
