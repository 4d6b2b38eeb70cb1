//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"sort"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// opProfile times the ops of eager forward passes: an event is recorded on
// the stream before a step's first op and after each op, and the time
// between consecutive events is charged to the op that ended there. A step's
// events are read when the next step begins (the engine has synchronised by
// then to sample) or when the totals are asked for.
type opProfile struct {
	events  []C.tk_event // pool, reused step after step
	labels  []string     // labels[i] ends at events[i]; labels[0] is the start
	kind    string
	pending bool
	err     error
	totals  map[[2]string]float64
	steps   map[string]int
}

func (p *opProfile) free() {
	for _, e := range p.events {
		C.tk_event_destroy(e)
	}
	p.events = nil
}

// record adds an event labelled op to the step being timed.
func (b *Backend) profRecord(op string) {
	p := &b.prof
	i := len(p.labels)
	if i == len(p.events) {
		var e C.tk_event
		if rc := C.tk_event_create(&e); rc != 0 {
			p.err = callError("cudaEventCreate", rc)
			return
		}
		p.events = append(p.events, e)
	}
	if rc := C.tk_event_record(p.events[i], b.stream); rc != 0 {
		p.err = callError("cudaEventRecord", rc)
		return
	}
	p.labels = append(p.labels, op)
}

// profResolve waits for the pending step's last event and adds its op times.
func (b *Backend) profResolve() {
	p := &b.prof
	if !p.pending {
		return
	}
	p.pending = false
	n := len(p.labels)
	if n < 2 || p.err != nil {
		return
	}
	if rc := C.tk_event_sync(p.events[n-1]); rc != 0 {
		p.err = callError("cudaEventSynchronize", rc)
		return
	}
	if p.totals == nil {
		p.totals, p.steps = map[[2]string]float64{}, map[string]int{}
	}
	for i := 1; i < n; i++ {
		var ms C.float
		if rc := C.tk_event_elapsed_ms(&ms, p.events[i-1], p.events[i]); rc != 0 {
			p.err = callError("cudaEventElapsedTime", rc)
			return
		}
		p.totals[[2]string{p.kind, p.labels[i]}] += float64(ms)
	}
	p.steps[p.kind]++
}

// ProfileBegin implements backend.OpProfiler.
func (b *Backend) ProfileBegin(kind string) {
	if !b.opts.ProfileOps || b.capturing {
		return
	}
	b.profResolve()
	b.prof.labels = b.prof.labels[:0]
	b.prof.kind = kind
	b.prof.pending = true
	b.profRecord("")
}

// ProfileMark implements backend.OpProfiler.
func (b *Backend) ProfileMark(op string) {
	if !b.opts.ProfileOps || b.capturing || !b.prof.pending {
		return
	}
	b.profRecord(op)
}

// OpProfile implements backend.OpProfiler.
func (b *Backend) OpProfile() ([]backend.OpTime, error) {
	if !b.opts.ProfileOps {
		return nil, nil
	}
	b.profResolve()
	if b.prof.err != nil {
		return nil, b.prof.err
	}
	out := make([]backend.OpTime, 0, len(b.prof.totals))
	for k, ms := range b.prof.totals {
		out = append(out, backend.OpTime{Kind: k[0], Op: k[1], Steps: b.prof.steps[k[0]], MS: ms})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].MS > out[j].MS
	})
	return out, nil
}
