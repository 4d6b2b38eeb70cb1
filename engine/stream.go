package engine

import (
	"context"
	"sync"
	"time"

	"github.com/tokamak-ai/tokamak/engine/sample"
	"github.com/tokamak-ai/tokamak/engine/sched"
)

// request is one accepted Request and its completions.
type request struct {
	ctx       context.Context
	req       Request
	out       *stream
	stopWatch func() bool
	seed      uint64
	n         int // completions
	open      int // completions not yet done
	// parent is completion 0 until its prompt is computed and the other
	// completions are forked from it.
	parent  *seqState
	forked  bool
	started bool
	// submitted is when Submit accepted the request; queueSeconds is the
	// wait until its prompt was first scheduled (0 until then).
	submitted    time.Time
	queueSeconds float64
}

// seqState is one completion: the scheduler's sequence plus what the
// engine needs to sample and stream it.
type seqState struct {
	r         *request
	index     int
	q         *sched.Seq
	promptLen int
	params    sample.Params
	hist      *sample.History
	dec       StreamDecoder
	stop      *sample.StopMatcher
	done      bool
}

func newRequest(ctx context.Context, req Request) *request {
	n := max(req.N, 1)
	seed := req.Params.Seed
	if !req.Params.HasSeed {
		seed = sample.NewSeed()
	}
	return &request{ctx: ctx, req: req, out: newStream(n), seed: seed, n: n, open: n, submitted: time.Now()}
}

// stream carries one request's events from the loop to the caller. The
// loop appends to an unbounded queue and never blocks; a goroutine per
// request moves events into the channel at the reader's pace, so a slow
// reader delays only itself.
type stream struct {
	mu     sync.Mutex
	queue  []Event
	closed bool // the last event has been queued
	notify chan struct{}
	ch     chan Event
}

func newStream(n int) *stream {
	return &stream{notify: make(chan struct{}, 1), ch: make(chan Event, 8*n+8)}
}

// push queues events; last marks the end of the request.
func (s *stream) push(ev Event, last bool) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.closed = s.closed || last
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *stream) take() ([]Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q, s.closed
}

// run delivers events until the last one, then closes the channel. Once
// ctx is done it no longer waits for the reader: what fits in the
// channel's buffer is delivered, the rest dropped.
func (s *stream) run(ctx context.Context) {
	defer close(s.ch)
	cancelled := false
	for {
		evs, closed := s.take()
		for _, ev := range evs {
			if !cancelled {
				select {
				case s.ch <- ev:
					continue
				case <-ctx.Done():
					cancelled = true
				}
			}
			select {
			case s.ch <- ev:
			default:
			}
		}
		if closed {
			return
		}
		if cancelled {
			<-s.notify
			continue
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			cancelled = true
		}
	}
}
