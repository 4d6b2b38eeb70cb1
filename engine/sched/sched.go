// Package sched decides, step by step, which sequences run and how many of
// their tokens each step computes (continuous batching). It asks the block
// manager (engine/kvcache) whether blocks are available; it never runs the
// model. Schedule is the whole policy and reads top to bottom:
//
//  1. batch work yields to interactive work that cannot start;
//  2. running sequences that decode get their one token, oldest first;
//  3. running sequences still prefilling get a chunk of their prompt;
//  4. waiting sequences are admitted, highest priority and oldest first,
//     while seats (MaxSeqs), the token budget (MaxBatchTokens) and free
//     blocks last.
//
// When a running sequence needs a block and none is free, the newest
// running sequence of the lowest priority is preempted: its blocks are
// freed and it goes back to the waiting queue to be recomputed later
// (its full blocks usually stay in the prefix cache, so recomputing them
// is cheap).
//
// A Scheduler is not safe for concurrent use: the engine loop owns it.
package sched

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tokamak-ai/tokamak/engine/kvcache"
)

// Priority is a scheduling class; lower values run first.
type Priority int

// Priority classes.
const (
	Interactive Priority = 0
	Batch       Priority = 1
)

// State is where a sequence is in its life.
type State int

// Sequence states.
const (
	Waiting State = iota
	Running
	Finished
)

// Seq is one sequence as the scheduler sees it. The engine owns Tokens
// (prompt, then generated tokens) and appends to it; the scheduler owns
// NumComputed and KV.
type Seq struct {
	// ID identifies the sequence to its owner.
	ID uint64
	// Tokens are the sequence's tokens from position 0.
	Tokens []int32
	// NumComputed is the number of leading tokens whose K/V are in the cache.
	NumComputed int
	// Priority is the sequence's class.
	Priority Priority
	// KV is the sequence's block table.
	KV kvcache.Seq
	// CachedTokens is the number of prompt tokens the prefix cache held at
	// the sequence's first admission (or that a fork shared).
	CachedTokens int
	// Preemptions counts how often the sequence was preempted.
	Preemptions int
	// MaxLen is the most tokens the sequence can reach (prompt plus its
	// output cap); 0 when unknown. Config.ReserveMaxLen plans with it.
	MaxLen int

	state    State
	arrival  uint64
	admitted bool
}

// State returns the sequence's state.
func (q *Seq) State() State { return q.state }

// remaining is the number of tokens not yet computed.
func (q *Seq) remaining() int { return len(q.Tokens) - q.NumComputed }

// decoding reports whether the sequence has exactly its last sampled token
// to compute.
func (q *Seq) decoding() bool { return q.remaining() == 1 && q.NumComputed > 0 }

// before orders sequences: higher priority, then earlier arrival, then ID.
func before(a, b *Seq) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if a.arrival != b.arrival {
		return a.arrival < b.arrival
	}
	return a.ID < b.ID
}

func compare(a, b *Seq) int {
	switch {
	case before(a, b):
		return -1
	case before(b, a):
		return 1
	}
	return 0
}

// Config holds the scheduler's limits.
type Config struct {
	// MaxBatchTokens caps the tokens computed in one step (> 0).
	MaxBatchTokens int
	// MaxSeqs caps the number of running sequences (> 0).
	MaxSeqs int
	// ReserveMaxLen admits a sequence only while the pool covers the peak
	// of future block use with every running sequence and it growing to
	// their MaxLen (each freeing its blocks there; a prompt that takes
	// several steps to prefill delays its own end), so running sequences
	// are never preempted for blocks (TensorRT-LLM's "guaranteed no evict"
	// policy; suits offline work whose output caps are known; sequences
	// without a MaxLen are planned as growing to the longest horizon and
	// are not covered by the guarantee). Off, a sequence is admitted on
	// the blocks of its first chunk and the newest running sequences are
	// preempted when decodes run out (vLLM's policy, higher occupancy).
	// A sequence is always admitted when nothing runs, so one longer than
	// the pool still makes progress.
	ReserveMaxLen bool
	// Stagger (with ReserveMaxLen) paces admissions while sequences run,
	// so that they start, and so finish, at evenly spread steps instead
	// of in waves: a sequence of n tokens that may generate r more holds
	// about n + r/2 tokens over its r steps, so admitting one every
	// r*(n+r/2)/capacity steps keeps the pool full in a steady state.
	// With every request of one length (offline benchmarks), admissions
	// under ReserveMaxLen alone come in waves: each wave is admitted
	// together, finishes together and runs with the pool sized for all of
	// it at its longest. Each step earns a step of credit (at most 2, or
	// two of the head's intervals, banked) and an admission spends its own
	// interval; the first sequence, and any when nothing runs, is free.
	// Nothing is paced while the pool holds every sequence that may run at
	// once (running, and waiting up to MaxSeqs) at its MaxLen (short
	// requests: pacing them cost 3% at 128/128 on an H100). Interactive
	// sequences are paced too: the policy is meant for offline batches.
	Stagger bool
}

// Item is one sequence's share of a step: its tokens
// Seq.Tokens[Start : Start+NumTokens].
type Item struct {
	Seq       *Seq
	Start     int
	NumTokens int
}

// Last reports whether the item reaches the end of the sequence's tokens,
// so that the step's logits for its last row are sampled.
func (it Item) Last() bool { return it.Start+it.NumTokens == len(it.Seq.Tokens) }

// Plan is what one step computes.
type Plan struct {
	// Items are the sequences of the step, in batch order.
	Items []Item
	// NumTokens is the sum of the items' NumTokens.
	NumTokens int
	// Preempted are the sequences preempted while planning.
	Preempted []*Seq
}

// Empty reports whether the plan computes nothing.
func (p *Plan) Empty() bool { return len(p.Items) == 0 }

// Scheduler holds the waiting and running queues.
type Scheduler struct {
	cfg         Config
	kv          *kvcache.Manager
	waiting     []*Seq // sorted by before
	running     []*Seq // sorted by before
	nextArrival uint64
	preemptions int64
	credit      float64 // Stagger's steps of credit earned and not yet spent
	pacing      bool    // Stagger paces this step's admissions
	fut         []future
	cnt         []int
}

// New makes a Scheduler over a block manager.
func New(cfg Config, kv *kvcache.Manager) (*Scheduler, error) {
	if cfg.MaxBatchTokens <= 0 || cfg.MaxSeqs <= 0 {
		return nil, fmt.Errorf("sched: need positive MaxBatchTokens and MaxSeqs, got %d and %d", cfg.MaxBatchTokens, cfg.MaxSeqs)
	}
	if kv == nil {
		return nil, errors.New("sched: nil block manager")
	}
	return &Scheduler{cfg: cfg, kv: kv}, nil
}

// Add queues a new sequence (len(Tokens) > 0, NumComputed 0, no blocks).
func (s *Scheduler) Add(q *Seq) {
	q.arrival = s.nextArrival
	s.nextArrival++
	s.enqueue(q)
}

// Fork queues a sequence that continues tokens (a prefix of parent's
// computed tokens, for n > 1 completions of one prompt): it shares the
// parent's computed full blocks and computes the rest itself. It runs in
// the parent's place in the queue order.
func (s *Scheduler) Fork(parent *Seq, id uint64, tokens []int32) *Seq {
	kv, shared := s.kv.Fork(&parent.KV, min(parent.NumComputed, len(tokens)-1))
	q := &Seq{ID: id, Tokens: tokens, NumComputed: shared, Priority: parent.Priority, KV: *kv, CachedTokens: shared, MaxLen: parent.MaxLen, arrival: parent.arrival}
	q.admitted = true // its cached prefix is settled; no prefix lookup
	s.enqueue(q)
	return q
}

func (s *Scheduler) enqueue(q *Seq) {
	q.state = Waiting
	i, _ := slices.BinarySearchFunc(s.waiting, q, compare)
	s.waiting = slices.Insert(s.waiting, i, q)
}

// NumRunning and NumWaiting are the queue lengths.
func (s *Scheduler) NumRunning() int { return len(s.running) }

// NumWaiting is the number of sequences waiting to run.
func (s *Scheduler) NumWaiting() int { return len(s.waiting) }

// Preemptions is the number of preemptions so far.
func (s *Scheduler) Preemptions() int64 { return s.preemptions }

// Schedule plans the next step.
func (s *Scheduler) Schedule() *Plan {
	p := &Plan{}
	s.pacing = s.staggered() && len(s.waiting) > 0 && !s.allFit()
	if s.pacing {
		s.credit = min(s.credit+1, max(maxCredit, 2*s.interval(s.waiting[0])))
	}
	s.yieldToInteractive(p)

	// Running sequences: decodes first, then prefill chunks, in queue order.
	order := slices.Clone(s.running)
	for _, decodes := range []bool{true, false} {
		for _, q := range order {
			if q.state != Running || q.decoding() != decodes || q.remaining() == 0 {
				continue
			}
			n := min(q.remaining(), s.cfg.MaxBatchTokens-p.NumTokens)
			if n == 0 {
				break
			}
			if s.reserve(q, n, p) {
				p.add(q, n)
			}
		}
	}

	// Waiting sequences, while seats, budget and blocks last.
	s.admitWaiting(p)
	if p.Empty() && len(s.running) == 0 && s.releaseWaiting() {
		// Only waiting forks held blocks; their prefixes stay cached.
		s.admitWaiting(p)
	}
	return p
}

func (s *Scheduler) admitWaiting(p *Plan) {
	for len(s.waiting) > 0 && len(s.running) < s.cfg.MaxSeqs && p.NumTokens < s.cfg.MaxBatchTokens {
		if !s.admit(s.waiting[0], p) {
			return
		}
	}
}

// releaseWaiting frees the blocks that waiting sequences (forks) hold, so
// that the queue cannot stall on blocks nobody running will release. It
// reports whether it freed any.
func (s *Scheduler) releaseWaiting() bool {
	freed := false
	for _, q := range s.waiting {
		if len(q.KV.Blocks) > 0 {
			s.kv.Free(&q.KV)
			q.NumComputed = 0
			freed = true
		}
	}
	return freed
}

// reserve gets blocks for n more tokens of running sequence q, preempting
// the newest running sequences as needed. It reports false when q itself
// had to be preempted.
func (s *Scheduler) reserve(q *Seq, n int, p *Plan) bool {
	for s.kv.Reserve(&q.KV, q.NumComputed+n) != nil {
		victim := s.running[len(s.running)-1]
		if (victim == q || s.cfg.ReserveMaxLen) && s.releaseWaiting() {
			// Before q gives up its own blocks, take back those that
			// waiting forks hold: q would be readmitted at once and run
			// short again while they keep them. Under ReserveMaxLen,
			// before anyone is preempted: admissions planned on the
			// blocks of finished sequences that forks still pin.
			continue
		}
		s.preempt(victim, p)
		if victim == q {
			return false
		}
	}
	return true
}

// admit moves the head of the waiting queue to running with its first
// chunk, if its blocks can be had without preempting anyone.
func (s *Scheduler) admit(q *Seq, p *Plan) bool {
	budget := s.cfg.MaxBatchTokens - p.NumTokens
	paced := s.pacing && len(s.running) > 0 && q.MaxLen > 0
	if paced && s.credit < s.interval(q) {
		return false
	}
	if s.cfg.ReserveMaxLen && len(s.running) > 0 && !s.fitsPeak(q, budget) {
		return false
	}
	if len(q.KV.Blocks) == 0 {
		// New or preempted: start from the longest cached prefix, but
		// always compute at least the last token, whose logits are needed.
		cached, err := s.kv.Admit(&q.KV, q.Tokens, len(q.Tokens)-1, budget)
		if err != nil {
			return false
		}
		q.NumComputed = cached
		if !q.admitted {
			q.CachedTokens = cached
			q.admitted = true
		}
	}
	n := min(q.remaining(), budget)
	if s.kv.Reserve(&q.KV, q.NumComputed+n) != nil {
		return false // a fork keeps its shared prefix while it waits
	}
	s.waiting = s.waiting[1:]
	if paced {
		s.credit -= s.interval(q)
	}
	q.state = Running
	i, _ := slices.BinarySearchFunc(s.running, q, compare)
	s.running = slices.Insert(s.running, i, q)
	p.add(q, n)
	return true
}

// maxCredit is the most steps of credit Stagger banks, or two of the
// head's intervals where that is more.
const maxCredit = 2

func (s *Scheduler) staggered() bool { return s.cfg.Stagger && s.cfg.ReserveMaxLen }

// allFit reports whether the pool holds every sequence that may run at
// once (the running ones and the waiting ones up to MaxSeqs) at its
// MaxLen (or its length, without one): then they can run together and
// pacing would only delay them.
func (s *Scheduler) allFit() bool {
	bs := s.kv.BlockSizeTokens()
	need := 0
	seats := max(0, s.cfg.MaxSeqs-len(s.running))
	for _, qs := range [][]*Seq{s.running, s.waiting[:min(seats, len(s.waiting))]} {
		for _, q := range qs {
			need += (max(q.MaxLen, len(q.Tokens)) + bs - 1) / bs
			if need > s.kv.NumBlocks() {
				return false
			}
		}
	}
	return true
}

// interval is the steps between admissions of sequences like q that keep
// the pool full of them in a steady state (see Config.Stagger): one
// holds about n + r/2 tokens over its r steps; 0 (not paced) for a
// sequence with nothing left to generate or no MaxLen.
func (s *Scheduler) interval(q *Seq) float64 {
	n := len(q.Tokens)
	r := q.MaxLen - n
	if q.MaxLen <= 0 || r <= 0 {
		return 0
	}
	capacity := float64(s.kv.NumBlocks() * s.kv.BlockSizeTokens())
	return float64(r) * (float64(n) + float64(r)/2) / capacity
}

// future is one sequence's part in fitsPeak: n tokens now, alive for
// steps 0..rem-1 (needing the blocks of n+s+1 tokens at step s), of
// which shared blocks are held by others too (counted apart, as never
// freed).
type future struct{ n, rem, shared int }

// fitsPeak reports whether the pool covers every running sequence and q
// growing to their MaxLen, each freeing its blocks when it reaches it:
// the peak over future steps of the blocks they hold. Shared blocks and
// waiting forks' blocks count as held throughout; a sequence without a
// MaxLen as growing through the longest horizon. q ends later when its
// prompt takes more than this step's budget: each later step gives it at
// least MaxBatchTokens less one token a running sequence (running
// prefills finish in the step of any admission, since they are planned
// first), or, when that is nothing, it is planned as never ending. Under
// it nothing running is preempted for blocks, while sequences that end
// sooner make room for later ones.
func (s *Scheduler) fitsPeak(q *Seq, budget int) bool {
	bs := s.kv.BlockSizeTokens()
	held := s.kv.NumBlocks() - s.kv.NumFree()
	fut := s.fut[:0]
	horizon := 1
	for _, r := range s.running {
		sh := s.kv.Shared(&r.KV)
		held -= len(r.KV.Blocks) - sh
		rem := r.MaxLen - len(r.Tokens)
		if r.MaxLen <= 0 {
			rem = 0 // the horizon, below
		}
		fut = append(fut, future{n: len(r.Tokens), rem: rem, shared: sh})
		horizon = max(horizon, rem)
	}
	// q's own blocks (a fork's shared prefix) are held already
	rem := q.MaxLen - len(q.Tokens)
	if left := q.remaining() - budget; left > 0 {
		if per := s.cfg.MaxBatchTokens - len(s.running) - 1; per > 0 {
			rem += (left + per - 1) / per
		} else {
			rem = 0 // never ends
		}
	}
	if q.MaxLen <= 0 {
		rem = 0
	}
	horizon = max(horizon, rem)
	fut = append(fut, future{n: len(q.Tokens), rem: rem, shared: len(q.KV.Blocks)})
	for i := range fut {
		if fut[i].rem <= 0 {
			fut[i].rem = horizon + 1 // alive past every other's end
		}
	}
	s.fut = fut
	if cap(s.cnt) < bs {
		s.cnt = make([]int, bs)
	}
	return peakFits(fut, held, s.kv.NumBlocks(), bs, s.cnt[:bs])
}

// peakFits reports whether base plus the blocks the sequences in fut hold
// stays within total at every future step. At step s a sequence with
// rem > s holds ceil((n+s+1)/bs) - shared blocks; each sum only grows
// until someone leaves, so it peaks at the steps s = rem-1. Visiting
// those from the latest, the alive set only grows, and its sum at s is
// kept as sum(floor((n+1)/bs) - shared) + alive*floor(s/bs) + a term from
// the counts of (n+1) mod bs (cnt, len bs, zeroed here): O(len(fut) *
// (log + bs)).
func peakFits(fut []future, base, total, bs int, cnt []int) bool {
	clear(cnt)
	slices.SortFunc(fut, func(a, b future) int { return b.rem - a.rem })
	sumQ, alive := 0, 0
	for j, f := range fut {
		sumQ += (f.n+1)/bs - f.shared
		cnt[(f.n+1)%bs]++
		alive++
		if j+1 < len(fut) && fut[j+1].rem == f.rem {
			continue // add the ties first: they are alive at the same steps
		}
		st := f.rem - 1
		m := st % bs
		use := base + sumQ + alive*(st/bs)
		for rr, c := range cnt {
			if c == 0 {
				continue
			}
			// ceil((rr+m)/bs) with 0 <= rr+m <= 2bs-2
			switch v := rr + m; {
			case v > bs:
				use += 2 * c
			case v > 0:
				use += c
			}
		}
		if use > total {
			return false
		}
	}
	return true
}

// yieldToInteractive preempts running batch sequences, newest first, while
// the first waiting sequence is interactive and lacks a seat or the blocks
// for its first chunk.
func (s *Scheduler) yieldToInteractive(p *Plan) {
	for len(s.waiting) > 0 && len(s.running) > 0 {
		w, last := s.waiting[0], s.running[len(s.running)-1]
		if w.Priority != Interactive || last.Priority == Interactive {
			return
		}
		n := min(w.remaining(), s.cfg.MaxBatchTokens)
		needBlocks := (w.NumComputed+n+s.kv.BlockSizeTokens()-1)/s.kv.BlockSizeTokens() - len(w.KV.Blocks)
		if len(s.running) < s.cfg.MaxSeqs && needBlocks <= s.kv.NumFree() {
			return
		}
		if s.pacing && w.MaxLen > 0 && s.credit < s.interval(w) {
			return // its admission waits for credit: a preemption would be lost
		}
		s.preempt(last, p)
	}
}

// preempt frees a running sequence's blocks and sends it back to wait; its
// tokens are recomputed when it runs again.
func (s *Scheduler) preempt(q *Seq, p *Plan) {
	s.removeRunning(q)
	if i := slices.IndexFunc(p.Items, func(it Item) bool { return it.Seq == q }); i >= 0 {
		p.NumTokens -= p.Items[i].NumTokens
		p.Items = slices.Delete(p.Items, i, i+1)
	}
	s.kv.Free(&q.KV)
	q.NumComputed = 0
	q.Preemptions++
	s.preemptions++
	p.Preempted = append(p.Preempted, q)
	s.enqueue(q)
}

func (p *Plan) add(q *Seq, n int) {
	p.Items = append(p.Items, Item{Seq: q, Start: q.NumComputed, NumTokens: n})
	p.NumTokens += n
}

// Advance records that the plan's step has run: each item's tokens are
// computed, and newly full blocks enter the prefix cache. The engine then
// appends the sampled token to every sequence whose item was Last.
func (s *Scheduler) Advance(p *Plan) {
	for _, it := range p.Items {
		q := it.Seq
		if q.state != Running || q.NumComputed != it.Start {
			continue // finished or preempted meanwhile
		}
		q.NumComputed += it.NumTokens
		s.kv.Commit(&q.KV, q.Tokens, q.NumComputed)
	}
}

// Finish removes a sequence, waiting or running, and frees its blocks.
func (s *Scheduler) Finish(q *Seq) {
	switch q.state {
	case Running:
		s.removeRunning(q)
	case Waiting:
		if i := slices.Index(s.waiting, q); i >= 0 {
			s.waiting = slices.Delete(s.waiting, i, i+1)
		}
	}
	s.kv.Free(&q.KV)
	q.state = Finished
}

func (s *Scheduler) removeRunning(q *Seq) {
	if i := slices.Index(s.running, q); i >= 0 {
		s.running = slices.Delete(s.running, i, i+1)
	}
}
