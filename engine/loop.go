package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/sample"
	"github.com/tokamak-ai/tokamak/engine/sched"
)

// loop is the engine's goroutine: take new requests, drop cancelled ones,
// run a step; sleep when there is nothing to run.
func (e *Engine) loop() {
	defer close(e.loopDone)
	for {
		e.intake()
		e.mu.Lock()
		abort, closing := e.abort, e.closing
		e.mu.Unlock()
		if abort {
			// closing is set, so the inbox gets nothing more; take what
			// was submitted since intake so that it is ended too.
			e.intake()
			for r := range e.reqs {
				e.endRequest(r, FinishCancelled, ErrShutdown)
			}
			e.publish()
			return
		}
		e.reap()
		if closing && len(e.reqs) == 0 {
			e.mu.Lock()
			empty := len(e.inbox) == 0
			e.mu.Unlock()
			if empty {
				e.publish()
				return
			}
			continue
		}
		if !e.step() {
			e.publish()
			<-e.wake
		}
	}
}

// intake moves submitted requests into the scheduler.
func (e *Engine) intake() {
	e.mu.Lock()
	in := e.inbox
	e.inbox = nil
	e.mu.Unlock()
	for _, r := range in {
		e.reqs[r] = true
		st := e.newSeq(r, 0, slices.Clone(r.req.PromptIDs))
		e.sched.Add(st.q)
		r.parent = st
	}
}

// newSeq makes completion index of r over tokens (the prompt).
func (e *Engine) newSeq(r *request, index int, tokens []int32) *seqState {
	e.nextID++
	st := &seqState{
		r:         r,
		index:     index,
		q:         &sched.Seq{ID: e.nextID, Tokens: tokens, Priority: sched.Priority(r.req.Priority), MaxLen: len(r.req.PromptIDs) + r.req.MaxTokens},
		promptLen: len(r.req.PromptIDs),
		params:    r.req.Params,
	}
	st.params.Seed = sample.CompletionSeed(r.seed, index)
	p := st.params
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 || p.PresencePenalty != 0 || p.FrequencyPenalty != 0 {
		st.hist = sample.NewHistory(r.req.PromptIDs)
	}
	if e.cfg.Detokenizer != nil {
		st.dec = e.cfg.Detokenizer.NewStreamDecoder()
		st.stop = sample.NewStopMatcher(r.req.StopStrings)
	}
	e.seqs[st.q.ID] = st
	return st
}

// reap ends the requests whose context is done; their blocks are freed.
func (e *Engine) reap() {
	for r := range e.reqs {
		if r.ctx.Err() != nil {
			e.endRequest(r, FinishCancelled, r.ctx.Err())
		}
	}
}

// step runs one scheduled forward pass and streams its tokens. It reports
// false when there was nothing to run.
func (e *Engine) step() bool {
	t0 := time.Now()
	plan := e.sched.Schedule()
	if plan.Empty() {
		return false
	}
	batch, rows, states := e.buildBatch(plan)

	results, forward, sampling, err := e.forward(batch, rows, states)
	if err != nil {
		// The step's sequences cannot go on; others are unaffected.
		for _, it := range plan.Items {
			if st := e.seqs[it.Seq.ID]; st != nil {
				e.endRequest(st.r, FinishError, fmt.Errorf("engine step: %w", err))
			}
		}
	} else {
		e.sched.Advance(plan)
		for i, st := range states {
			if st.r.n > 1 && !st.r.forked && st.index == 0 {
				e.fork(st.r)
			}
			e.accept(st, results[i])
		}
	}
	e.mu.Lock()
	e.stats.ForwardTokens += int64(plan.NumTokens)
	e.stats.Steps++
	e.mu.Unlock()
	e.publish()
	if e.cfg.OnStep != nil {
		e.cfg.OnStep(StepInfo{NumSeqs: len(plan.Items), NumTokens: plan.NumTokens, Forward: forward, Sample: sampling, Total: time.Since(t0)})
	}
	return true
}

// batchBuf keeps the step's host buffers between steps.
type batchBuf struct {
	b      backend.Batch
	rows   []sample.Row
	states []*seqState
}

// buildBatch lays out the plan as a backend batch. rows and states list
// the sequences that sample this step, in logit-row order.
func (e *Engine) buildBatch(p *sched.Plan) (*backend.Batch, []sample.Row, []*seqState) {
	bs := int32(e.cfg.BlockSizeTokens)
	bb := &e.bat
	b := &bb.b
	b.Tokens, b.Positions, b.Slots = b.Tokens[:0], b.Positions[:0], b.Slots[:0]
	b.QueryStart = append(b.QueryStart[:0], 0)
	b.ContextLen, b.BlockTables, b.LogitRows = b.ContextLen[:0], b.BlockTables[:0], b.LogitRows[:0]
	bb.rows, bb.states = bb.rows[:0], bb.states[:0]
	now := time.Now()
	for _, it := range p.Items {
		q := it.Seq
		if r := e.seqs[q.ID].r; r.queueSeconds == 0 {
			r.queueSeconds = max(now.Sub(r.submitted).Seconds(), 1e-9)
		}
		end := it.Start + it.NumTokens
		b.Tokens = append(b.Tokens, q.Tokens[it.Start:end]...)
		for pos := int32(it.Start); pos < int32(end); pos++ {
			b.Positions = append(b.Positions, pos)
			b.Slots = append(b.Slots, q.KV.Blocks[pos/bs]*bs+pos%bs)
		}
		b.QueryStart = append(b.QueryStart, int32(len(b.Tokens)))
		b.ContextLen = append(b.ContextLen, int32(end))
		b.BlockTables = append(b.BlockTables, q.KV.Blocks)
		if it.Last() {
			st := e.seqs[q.ID]
			b.LogitRows = append(b.LogitRows, int32(len(b.Tokens)-1))
			bb.rows = append(bb.rows, sample.Row{Params: st.params, History: st.hist, Draw: uint64(len(q.Tokens) - st.promptLen)})
			bb.states = append(bb.states, st)
		}
	}
	if len(b.LogitRows) == 0 {
		// Only prompt chunks this step; the model still returns one row.
		b.LogitRows = append(b.LogitRows, int32(len(b.Tokens)-1))
	}
	return b, bb.rows, bb.states
}

// forward runs the model and samples the rows; it reports the time of
// each part.
func (e *Engine) forward(batch *backend.Batch, rows []sample.Row, states []*seqState) (res []sample.Result, fwd, smp time.Duration, err error) {
	t0 := time.Now()
	var logits backend.Tensor
	if e.dec != nil && e.dec.Fits(batch) {
		// a view of the decoder's buffer: the Free below only forgets it
		logits, err = e.dec.Forward(batch)
		e.mu.Lock()
		e.stats.PaddedDecodeSteps++
		e.mu.Unlock()
	} else {
		logits, err = e.r.Forward(batch, e.cache)
	}
	t1 := time.Now()
	if err != nil {
		return nil, t1.Sub(t0), 0, err
	}
	defer e.b.Free(logits)
	if len(rows) > 0 {
		res, err = e.sample(logits, rows, states)
	}
	return res, t1.Sub(t0), time.Since(t1), err
}

// sample samples each row of the step's logits.
func (e *Engine) sample(logits backend.Tensor, rows []sample.Row, states []*seqState) ([]sample.Result, error) {
	if ds, ok := e.b.(sample.DeviceSampler); ok && e.cfg.logitsHook == nil {
		return ds.SampleBatch(logits, rows)
	}
	host, err := e.b.Download(logits)
	if err != nil {
		return nil, fmt.Errorf("download logits: %w", err)
	}
	shape := logits.Shape()
	if len(shape) != 2 || shape[0] != len(rows) {
		return nil, fmt.Errorf("logits shape %v for %d rows", shape, len(rows))
	}
	if e.cfg.logitsHook != nil {
		for i, st := range states {
			e.cfg.logitsHook(st.q.ID, host[i*shape[1]:(i+1)*shape[1]])
		}
	}
	return sample.SampleRows(host, shape[1], rows)
}

// fork starts completions 1..n-1 of r from completion 0, whose prompt is
// now computed: they share its full prompt blocks.
func (e *Engine) fork(r *request) {
	r.forked = true
	for i := 1; i < r.n; i++ {
		st := e.newSeq(r, i, slices.Clone(r.req.PromptIDs))
		st.q = e.sched.Fork(r.parent.q, st.q.ID, st.q.Tokens)
		e.seqs[st.q.ID] = st
	}
}

// accept appends a sampled token to its sequence, applies the stop
// conditions and streams the event.
func (e *Engine) accept(st *seqState, res sample.Result) {
	r, q := st.r, st.q
	tok := res.Token
	q.Tokens = append(q.Tokens, tok)
	if st.hist != nil {
		st.hist.Append(tok)
	}
	ev := Event{Index: st.index, Token: tok, HasToken: true, Logprob: res.Logprob}
	if len(q.Tokens)-st.promptLen == 1 {
		ev.QueueSeconds = r.queueSeconds
	}
	for _, t := range res.Top {
		ev.TopLogprobs = append(ev.TopLogprobs, TokenLogprob{ID: t.ID, Logprob: t.Logprob})
	}
	var reason FinishReason
	if e.eos[tok] && !r.req.IgnoreEOS || slices.Contains(r.req.StopTokenIDs, tok) {
		reason = FinishStop
		ev.Text = st.flush()
	} else {
		if st.dec != nil {
			text, stopped := st.stop.Push(st.dec.Add(tok))
			ev.Text = text
			if stopped {
				reason = FinishStop
			}
		}
		if reason == "" && len(q.Tokens)-st.promptLen >= r.req.MaxTokens {
			reason = FinishLength
			ev.Text += st.flush()
		}
	}
	e.mu.Lock()
	e.stats.GeneratedTokens++
	e.mu.Unlock()
	if reason != "" {
		e.endSeq(st, ev, reason, nil)
		return
	}
	r.out.push(ev, false)
}

func (st *seqState) flush() string {
	if st.stop == nil {
		return ""
	}
	return st.stop.Flush()
}

// endSeq finishes one completion with its Done event and frees its blocks.
func (e *Engine) endSeq(st *seqState, ev Event, reason FinishReason, err error) {
	if st.done {
		return
	}
	st.done = true
	r := st.r
	ev.Index, ev.Done, ev.FinishReason, ev.Err = st.index, true, reason, err
	ev.PromptTokens, ev.CachedPromptTokens = st.promptLen, st.q.CachedTokens
	if st.q.ID != 0 {
		e.sched.Finish(st.q)
		delete(e.seqs, st.q.ID)
	}
	e.mu.Lock()
	e.stats.PromptTokens += int64(st.promptLen)
	e.stats.CachedPromptTokens += int64(st.q.CachedTokens)
	e.mu.Unlock()
	r.open--
	last := r.open == 0
	if last {
		delete(e.reqs, r)
		r.stopWatch()
	}
	r.out.push(ev, last)
}

// endRequest finishes every open completion of r, including those not
// yet forked.
func (e *Engine) endRequest(r *request, reason FinishReason, err error) {
	if reason != FinishError && !errors.Is(err, ErrShutdown) {
		err = nil
	}
	var live []*seqState
	for _, st := range e.seqs {
		if st.r == r {
			live = append(live, st)
		}
	}
	slices.SortFunc(live, func(a, b *seqState) int { return a.index - b.index })
	if !r.forked {
		for i := 1; i < r.n; i++ {
			live = append(live, &seqState{r: r, index: i, q: &sched.Seq{}, promptLen: len(r.req.PromptIDs)})
		}
		r.forked = true
	}
	for _, st := range live {
		e.endSeq(st, Event{}, reason, err)
	}
}

// publish refreshes the stats snapshot.
func (e *Engine) publish() {
	kst := e.kv.Stats()
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.stats
	s.Running, s.Waiting = e.sched.NumRunning(), e.sched.NumWaiting()
	e.waiting = s.Waiting
	s.KVBlocksUsed = kst.NumBlocks - kst.FreeBlocks
	s.KVUsage = float64(s.KVBlocksUsed) / float64(kst.NumBlocks)
	if s.PromptTokens > 0 {
		s.PrefixHitRatio = float64(s.CachedPromptTokens) / float64(s.PromptTokens)
	}
	s.Preemptions = e.sched.Preemptions()
	s.PrefixHitBlocks, s.PrefixMissBlocks, s.Evictions = kst.HitBlocks, kst.MissBlocks, kst.Evictions
}
