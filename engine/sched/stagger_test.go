package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/kvcache"
)

// peakBrute is peakFits by walking every step.
func peakBrute(fut []future, base, total, bs int) bool {
	last := 0
	for _, f := range fut {
		last = max(last, f.rem)
	}
	for s := 0; s < last; s++ {
		use := base
		for _, f := range fut {
			if f.rem > s {
				use += (f.n+s+1+bs-1)/bs - f.shared
			}
		}
		if use > total {
			return false
		}
	}
	return true
}

// TestPeakFitsMatchesBruteForce compares the O(n log n) peak with a walk
// over every future step, on random sets whose totals straddle the peak.
func TestPeakFitsMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	for _, bs := range []int{1, 4, 16} {
		fits, fails := 0, 0
		for iter := 0; iter < 3000; iter++ {
			fut := make([]future, 1+r.IntN(12))
			for i := range fut {
				n := 1 + r.IntN(100)
				fut[i] = future{n: n, rem: 1 + r.IntN(60)}
				if r.IntN(4) == 0 {
					fut[i].shared = r.IntN(n/bs + 1)
				}
			}
			if r.IntN(3) == 0 { // ties
				fut[len(fut)-1].rem = fut[0].rem
			}
			base := r.IntN(10)
			// the brute-force peak, then a total around it
			peak := 0
			for total := 0; ; total++ {
				if peakBrute(fut, base, total, bs) {
					peak = total
					break
				}
			}
			total := max(0, peak+r.IntN(5)-2)
			want := peakBrute(fut, base, total, bs)
			got := peakFits(append([]future(nil), fut...), base, total, bs, make([]int, bs))
			if got != want {
				t.Fatalf("bs %d, base %d, total %d (peak %d), %+v: peakFits %v, brute force %v", bs, base, total, peak, fut, got, want)
			}
			if want {
				fits++
			} else {
				fails++
			}
		}
		if fits == 0 || fails == 0 {
			t.Fatalf("bs %d: %d fit and %d did not: the cases do not straddle the peak", bs, fits, fails)
		}
	}
}

// TestSchedulerReserveMaxLenAdmitsBehindAnEndingSequence: a running
// sequence four tokens from its end holds most of the pool; a new one
// whose MaxLen needs the rest only after the first has gone is admitted
// at once (every sequence at its MaxLen together would not fit), and
// nothing is preempted.
func TestSchedulerReserveMaxLenAdmitsBehindAnEndingSequence(t *testing.T) {
	s, _ := newSchedCfg(t, 16, 4, Config{MaxBatchTokens: 64, MaxSeqs: 4, ReserveMaxLen: true})
	a := &Seq{ID: 1, Tokens: prompt(20, 0), MaxLen: 24}
	b := &Seq{ID: 2, Tokens: prompt(8, 100), MaxLen: 48}
	target := map[*Seq]int{a: 24, b: 48}
	s.Add(a)
	step(s, s.Schedule(), target) // a's prompt: 6 blocks held
	s.Add(b)
	p := s.Schedule()
	if got := items(p); got != "1:20+1 2:0+8 " {
		t.Fatalf("b not admitted beside a: plan %q", got)
	}
	step(s, p, target)
	for i := 0; i < 100 && s.NumRunning() > 0; i++ {
		step(s, s.Schedule(), target)
	}
	if a.State() != Finished || b.State() != Finished || s.Preemptions() != 0 {
		t.Fatalf("states %v %v, %d preemptions", a.State(), b.State(), s.Preemptions())
	}
}

// TestSchedulerStagger runs 40 equal sequences through a pool that holds
// a few at their MaxLen, with and without Stagger: both drain with no
// preemption; without it whole waves are admitted in one step, with it
// no step admits more than the banked credit once something runs.
func TestSchedulerStagger(t *testing.T) {
	stepsOf := map[bool]int{}
	for _, stagger := range []bool{false, true} {
		s, kv := newSchedCfg(t, 64, 4, Config{MaxBatchTokens: 256, MaxSeqs: 64, ReserveMaxLen: true, Stagger: stagger})
		seqs, target := addSeqs(s, 40, 8, 1000, 40)
		maxAdmit, steps, besides := 0, 0, 0
		for ; steps < 5000 && s.NumRunning()+s.NumWaiting() > 0; steps++ {
			wasRunning := s.NumRunning() > 0
			p := s.Schedule()
			admitted := 0
			for _, it := range p.Items {
				if it.Start == 0 {
					admitted++
				}
			}
			if wasRunning {
				maxAdmit = max(maxAdmit, admitted)
				besides += admitted
			}
			step(s, p, target)
		}
		for _, q := range seqs {
			if q.State() != Finished {
				t.Fatalf("stagger %v: sequence %d did not finish (state %v)", stagger, q.ID, q.State())
			}
		}
		if s.Preemptions() != 0 || kv.NumFree() != 64 {
			t.Fatalf("stagger %v: %d preemptions, %d of 64 blocks free", stagger, s.Preemptions(), kv.NumFree())
		}
		if stagger && maxAdmit > maxCredit {
			t.Fatalf("stagger: %d admitted in one step while others ran, want <= %d", maxAdmit, maxCredit)
		}
		if !stagger && maxAdmit <= maxCredit {
			t.Fatalf("no stagger: at most %d admitted in a step while others ran; the test needs waves", maxAdmit)
		}
		if besides < 30 {
			t.Fatalf("stagger %v: only %d of 40 admitted while others ran", stagger, besides)
		}
		stepsOf[stagger] = steps
		t.Logf("stagger %v: %d steps, at most %d admitted in a step while others ran", stagger, steps, maxAdmit)
	}
	// pacing spreads the work; it must not stall it
	if stepsOf[true] > stepsOf[false]*3/2 {
		t.Fatalf("%d steps with Stagger against %d without", stepsOf[true], stepsOf[false])
	}
}

// TestSchedulerStaggerLeavesFittingWorkAlone: when the pool holds every
// sequence at its MaxLen, Stagger admits them as they come (the first
// step takes all four), as guaranteed-no-evict alone does.
func TestSchedulerStaggerLeavesFittingWorkAlone(t *testing.T) {
	s, _ := newSchedCfg(t, 64, 4, Config{MaxBatchTokens: 256, MaxSeqs: 64, ReserveMaxLen: true, Stagger: true})
	for i := range 4 {
		s.Add(&Seq{ID: uint64(i + 1), Tokens: prompt(8, int32(1000*i)), MaxLen: 40})
	}
	if p := s.Schedule(); len(p.Items) != 4 {
		t.Fatalf("first step admitted %q; want all four", items(p))
	}
}

// TestSchedulerReserveMaxLenNeverPreemptsRandom drives random workloads
// through ReserveMaxLen, with and without Stagger: prompts longer than
// the step budget (chunked prefill), prompts sharing prefixes (cache
// hits), and n > 1 requests forked after their first token, as the
// engine forks them. Nothing running may be preempted, every sequence
// finishes, and the pool drains consistent.
func TestSchedulerReserveMaxLenNeverPreemptsRandom(t *testing.T) {
	for _, stagger := range []bool{false, true} {
		for seed := uint64(0); seed < 400; seed++ {
			if err := noEvictRun(seed, stagger); err != nil {
				t.Fatalf("stagger %v, seed %d: %v", stagger, seed, err)
			}
		}
	}
}

func noEvictRun(seed uint64, stagger bool) error {
	r := rand.New(rand.NewPCG(seed, 11))
	bs := []int{1, 2, 4, 16}[r.IntN(4)]
	blocks := 8 + r.IntN(40)
	kv, err := kvcache.New(kvcache.Config{NumBlocks: blocks, BlockSizeTokens: bs})
	if err != nil {
		return err
	}
	s, err := New(Config{MaxBatchTokens: 2 + r.IntN(64), MaxSeqs: 1 + r.IntN(16), ReserveMaxLen: true, Stagger: stagger}, kv)
	if err != nil {
		return err
	}
	target := map[*Seq]int{}
	promptLen := map[*Seq]int{}
	var all []*Seq
	id := uint64(0)
	for stepN := 0; stepN < 100000; stepN++ {
		if stepN < 100 && r.IntN(3) == 0 {
			id++
			n := 1 + r.IntN(blocks*bs/2)
			maxLen := min(n+1+r.IntN(blocks*bs/2), blocks*bs)
			q := &Seq{ID: id, Tokens: prompt(n, int32(r.IntN(3))*10000), MaxLen: maxLen}
			target[q], promptLen[q] = maxLen, n
			all = append(all, q)
			s.Add(q)
		}
		p := s.Schedule()
		s.Advance(p)
		for _, it := range p.Items {
			if !it.Last() {
				continue
			}
			q := it.Seq
			if len(q.Tokens) == promptLen[q] && r.IntN(3) == 0 {
				for range 1 + r.IntN(2) {
					id++
					c := s.Fork(q, id, append([]int32(nil), q.Tokens...))
					target[c] = target[q]
					all = append(all, c)
				}
			}
			q.Tokens = append(q.Tokens, int32(len(q.Tokens)))
			if len(q.Tokens) >= target[q] {
				s.Finish(q)
			}
		}
		if s.Preemptions() > 0 {
			return fmt.Errorf("step %d: a running sequence was preempted (plan %q)", stepN, items(p))
		}
		if stepN >= 100 && s.NumRunning()+s.NumWaiting() == 0 {
			break
		}
	}
	for _, q := range all {
		if q.State() != Finished {
			return fmt.Errorf("sequence %d did not finish (state %v, %d tokens of %d, MaxLen %d, %d computed; %d running, %d waiting, %d of %d blocks free)",
				q.ID, q.State(), len(q.Tokens), target[q], q.MaxLen, q.NumComputed, s.NumRunning(), s.NumWaiting(), kv.NumFree(), blocks)
		}
	}
	if kv.NumFree() != blocks {
		return fmt.Errorf("%d of %d blocks free after draining", kv.NumFree(), blocks)
	}
	return kv.Check()
}

// TestSchedulerReserveMaxLenChunkedCandidate: a sequence admitted beside
// a long-running one with a prompt that takes several steps to prefill
// ends steps later than its MaxLen alone says; admitting it must allow
// for that (it was preempted when the plan ignored the delay).
func TestSchedulerReserveMaxLenChunkedCandidate(t *testing.T) {
	s, _ := newSchedCfg(t, 16, 4, Config{MaxBatchTokens: 8, MaxSeqs: 8, ReserveMaxLen: true})
	a := &Seq{ID: 1, Tokens: prompt(40, 0), MaxLen: 60}
	target := map[*Seq]int{a: 60}
	s.Add(a)
	for range 5 {
		step(s, s.Schedule(), target)
	}
	q := &Seq{ID: 2, Tokens: prompt(16, 1000), MaxLen: 20}
	target[q] = 20
	s.Add(q)
	for i := 0; i < 200 && s.NumRunning()+s.NumWaiting() > 0; i++ {
		step(s, s.Schedule(), target)
	}
	if a.State() != Finished || q.State() != Finished || s.Preemptions() != 0 {
		t.Fatalf("states %v %v, %d preemptions", a.State(), q.State(), s.Preemptions())
	}
}
