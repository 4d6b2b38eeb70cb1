package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/kvcache"
)

func newSched(t testing.TB, blocks, bs, maxTokens, maxSeqs int) (*Scheduler, *kvcache.Manager) {
	t.Helper()
	return newSchedCfg(t, blocks, bs, Config{MaxBatchTokens: maxTokens, MaxSeqs: maxSeqs})
}

// newSchedCfg is a Scheduler with cfg over a pool of blocks blocks of bs
// tokens.
func newSchedCfg(t testing.TB, blocks, bs int, cfg Config) (*Scheduler, *kvcache.Manager) {
	t.Helper()
	kv, err := kvcache.New(kvcache.Config{NumBlocks: blocks, BlockSizeTokens: bs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	return s, kv
}

// addSeqs adds n sequences with IDs 1..n, prompts of plen tokens (the
// i-th starting at token stride*i) and MaxLen maxLen, and returns them
// with each one's target length (its MaxLen).
func addSeqs(s *Scheduler, n, plen, stride, maxLen int) ([]*Seq, map[*Seq]int) {
	target := map[*Seq]int{}
	var seqs []*Seq
	for i := range n {
		q := &Seq{ID: uint64(i + 1), Tokens: prompt(plen, int32(stride*i)), MaxLen: maxLen}
		s.Add(q)
		target[q] = maxLen
		seqs = append(seqs, q)
	}
	return seqs, target
}

func prompt(n int, base int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = base + int32(i)
	}
	return out
}

// step runs a plan the way the engine does: advance, then append a token
// to each sequence that sampled; sequences reaching target finish.
func step(s *Scheduler, p *Plan, target map[*Seq]int) {
	s.Advance(p)
	for _, it := range p.Items {
		if !it.Last() {
			continue
		}
		q := it.Seq
		q.Tokens = append(q.Tokens, int32(len(q.Tokens)))
		if len(q.Tokens) >= target[q] {
			s.Finish(q)
		}
	}
}

func items(p *Plan) string {
	out := ""
	for _, it := range p.Items {
		out += fmt.Sprintf("%d:%d+%d ", it.Seq.ID, it.Start, it.NumTokens)
	}
	return out
}

func TestSchedulerChunksLongPromptsAndPutsDecodesFirst(t *testing.T) {
	s, _ := newSched(t, 64, 4, 8, 8)
	a := &Seq{ID: 1, Tokens: prompt(3, 0)}
	s.Add(a)
	target := map[*Seq]int{a: 10}
	p := s.Schedule()
	if got := items(p); got != "1:0+3 " {
		t.Fatalf("step 1: %s", got)
	}
	step(s, p, target)
	b := &Seq{ID: 2, Tokens: prompt(20, 100)}
	s.Add(b)
	target[b] = 30
	want := []string{"1:3+1 2:0+7 ", "1:4+1 2:7+7 ", "1:5+1 2:14+6 ", "1:6+1 2:20+1 "}
	for i, w := range want {
		p := s.Schedule()
		if got := items(p); got != w {
			t.Fatalf("step %d: %s, want %s", i+2, got, w)
		}
		if p.NumTokens > 8 {
			t.Fatalf("step %d: %d tokens over the budget", i+2, p.NumTokens)
		}
		step(s, p, target)
	}
}

func TestSchedulerRespectsMaxSeqs(t *testing.T) {
	s, _ := newSched(t, 64, 4, 100, 2)
	for i := 0; i < 3; i++ {
		s.Add(&Seq{ID: uint64(i), Tokens: prompt(2, 0)})
	}
	p := s.Schedule()
	if got := items(p); got != "0:0+2 1:0+2 " || s.NumWaiting() != 1 {
		t.Fatalf("got %s with %d waiting", got, s.NumWaiting())
	}
}

func TestSchedulerPreemptsNewestFirst(t *testing.T) {
	// 4 blocks of 2 tokens: two sequences of 4 tokens fill the pool; the
	// next decode of the older one needs a fifth block.
	s, kv := newSched(t, 4, 2, 100, 8)
	a, b := &Seq{ID: 1, Tokens: prompt(4, 0)}, &Seq{ID: 2, Tokens: prompt(4, 10)}
	s.Add(a)
	s.Add(b)
	target := map[*Seq]int{a: 8, b: 8}
	step(s, s.Schedule(), target)
	p := s.Schedule()
	if len(p.Preempted) != 1 || p.Preempted[0] != b || items(p) != "1:4+1 " {
		t.Fatalf("plan %s, preempted %v", items(p), p.Preempted)
	}
	if b.State() != Waiting || b.NumComputed != 0 || len(b.KV.Blocks) != 0 {
		t.Fatalf("preempted sequence: state %v computed %d blocks %v", b.State(), b.NumComputed, b.KV.Blocks)
	}
	for i := 0; i < 20 && (a.State() != Finished || b.State() != Finished); i++ {
		step(s, s.Schedule(), target)
	}
	if a.State() != Finished || b.State() != Finished || kv.NumFree() != 4 {
		t.Fatalf("did not drain: a %v b %v free %d", a.State(), b.State(), kv.NumFree())
	}
}

func TestSchedulerRunsInteractiveBeforeBatch(t *testing.T) {
	s, _ := newSched(t, 64, 4, 100, 1)
	bg := &Seq{ID: 1, Tokens: prompt(4, 0), Priority: Batch}
	s.Add(bg)
	target := map[*Seq]int{bg: 50}
	step(s, s.Schedule(), target)
	fg := &Seq{ID: 2, Tokens: prompt(4, 50), Priority: Interactive}
	s.Add(fg)
	target[fg] = 6
	p := s.Schedule()
	if items(p) != "2:0+4 " || len(p.Preempted) != 1 || p.Preempted[0] != bg {
		t.Fatalf("interactive did not displace batch: %s, preempted %d", items(p), len(p.Preempted))
	}
	step(s, p, target)
	// The batch sequence waits until the interactive one is done.
	for fg.State() != Finished {
		p := s.Schedule()
		for _, it := range p.Items {
			if it.Seq == bg {
				t.Fatal("batch sequence ran beside interactive one with one seat")
			}
		}
		step(s, p, target)
	}
	// Its full block stayed in the prefix cache: only the last token is recomputed.
	if p := s.Schedule(); items(p) != "1:4+1 " {
		t.Fatalf("batch resume: %s", items(p))
	}
}

func TestSchedulerRandomWorkloadDrains(t *testing.T) {
	for seed := uint64(0); seed < 10; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		blocks, bs := 8+r.IntN(40), 1+r.IntN(8)
		budget, seats := 4+r.IntN(60), 1+r.IntN(10)
		s, kv := newSched(t, blocks, bs, budget, seats)
		target := map[*Seq]int{}
		var all []*Seq
		for i := 0; i < 30; i++ {
			n := 1 + r.IntN(blocks*bs/2)
			q := &Seq{ID: uint64(i), Tokens: prompt(n, int32(r.IntN(3))*1000), Priority: Priority(r.IntN(2))}
			target[q] = min(n+1+r.IntN(20), blocks*bs)
			all = append(all, q)
		}
		steps := 0
		for added := 0; ; steps++ {
			if added < len(all) && r.IntN(3) == 0 {
				s.Add(all[added])
				added++
			}
			if added == len(all) && s.NumRunning()+s.NumWaiting() == 0 {
				break
			}
			p := s.Schedule()
			if p.NumTokens > budget || s.NumRunning() > seats {
				t.Fatalf("seed %d: %d tokens, %d running", seed, p.NumTokens, s.NumRunning())
			}
			if p.Empty() && s.NumRunning()+s.NumWaiting() > 0 {
				t.Fatalf("seed %d: stuck with %d running, %d waiting", seed, s.NumRunning(), s.NumWaiting())
			}
			step(s, p, target)
			if steps > 100000 {
				t.Fatalf("seed %d: no progress", seed)
			}
		}
		if kv.NumFree() != blocks {
			t.Fatalf("seed %d: %d of %d blocks free after draining", seed, kv.NumFree(), blocks)
		}
		if err := kv.Check(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkSchedule measures the Go time of one scheduling step (plan and
// advance) with n sequences decoding.
func BenchmarkSchedule(b *testing.B) {
	for _, n := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("running=%d", n), func(b *testing.B) {
			s, _ := newSched(b, n*40, 16, 8192, n)
			target := map[*Seq]int{}
			var seqs []*Seq
			start := func() {
				for _, q := range seqs {
					s.Finish(q)
				}
				seqs = seqs[:0]
				for i := 0; i < n; i++ {
					q := &Seq{ID: uint64(i), Tokens: prompt(100, int32(i)*1000)}
					s.Add(q)
					seqs = append(seqs, q)
					target[q] = 1 << 30
				}
				for seqs[n-1].NumComputed < 100 {
					step(s, s.Schedule(), target)
				}
			}
			start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := s.Schedule()
				if len(p.Items) != n {
					b.Fatalf("%d items", len(p.Items))
				}
				step(s, p, target)
				if len(seqs[0].Tokens) > 500 {
					b.StopTimer()
					start()
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/step")
		})
	}
}

func TestSchedulerDoesNotStallOnBlocksHeldByWaitingForks(t *testing.T) {
	// 4 blocks of 2 tokens. A batch parent of 5 tokens forks a child that
	// shares its 2 full blocks, then finishes; an interactive request of 5
	// tokens (3 blocks) then waits ahead of the child, which holds 2 of
	// the 4 blocks while nothing runs.
	s, kv := newSched(t, 4, 2, 100, 4)
	parent := &Seq{ID: 1, Tokens: prompt(5, 0), Priority: Batch}
	s.Add(parent)
	step(s, s.Schedule(), map[*Seq]int{parent: 100})
	child := s.Fork(parent, 2, prompt(5, 0))
	s.Finish(parent)
	fg := &Seq{ID: 3, Tokens: prompt(5, 100), Priority: Interactive}
	s.Add(fg)
	if kv.NumFree() != 2 || child.NumComputed != 4 {
		t.Fatalf("setup: %d free blocks, child computed %d", kv.NumFree(), child.NumComputed)
	}
	p := s.Schedule()
	if items(p) != "3:0+5 " {
		t.Fatalf("plan %q: the interactive request should run once the waiting fork lets go", items(p))
	}
	step(s, p, map[*Seq]int{fg: 6})
	// The interactive request evicted the tail block of the child's
	// prefix (least recently used); its head block is still cached.
	if p := s.Schedule(); items(p) != "2:2+3 " {
		t.Fatalf("child plan %q, want it to resume from its cached prefix", items(p))
	}
}

// TestSchedulerReserveMaxLenNeverPreempts runs the same workload under
// both admission policies: four sequences whose full lengths overflow the
// pool. Admitting on the first chunk preempts; reserving each sequence's
// MaxLen (the peak of their future use, each freeing its blocks at its
// end) admits fewer at once and preempts nothing. Both drain.
func TestSchedulerReserveMaxLenNeverPreempts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		reserve     bool
		wantPreempt bool
	}{
		{"first-chunk", false, true},
		{"reserve-max-len", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 16 blocks of 4 tokens; each sequence grows from 8 to 24
			// tokens (6 blocks): two fit whole, four do not.
			s, kv := newSchedCfg(t, 16, 4, Config{MaxBatchTokens: 64, MaxSeqs: 8, ReserveMaxLen: tc.reserve})
			seqs, target := addSeqs(s, 4, 8, 100, 24)
			maxRunning := 0
			for i := 0; i < 200 && s.NumRunning()+s.NumWaiting() > 0; i++ {
				step(s, s.Schedule(), target)
				maxRunning = max(maxRunning, s.NumRunning())
			}
			for _, q := range seqs {
				if q.State() != Finished {
					t.Fatalf("sequence %d did not finish (state %v)", q.ID, q.State())
				}
			}
			if got := s.Preemptions() > 0; got != tc.wantPreempt {
				t.Fatalf("%d preemptions; want preemptions: %v", s.Preemptions(), tc.wantPreempt)
			}
			if tc.reserve && maxRunning > 3 {
				// two fit whole; a third only beside two about to end
				t.Fatalf("%d sequences ran at once", maxRunning)
			}
			if kv.NumFree() != 16 {
				t.Fatalf("%d blocks free after draining, want 16", kv.NumFree())
			}
		})
	}
}

// TestSchedulerReserveMaxLenAdmitsOversizeAlone checks progress: a
// sequence whose MaxLen exceeds the whole pool still runs when nothing
// else does (its growth then preempts nobody but itself).
func TestSchedulerReserveMaxLenAdmitsOversizeAlone(t *testing.T) {
	s, _ := newSchedCfg(t, 4, 4, Config{MaxBatchTokens: 64, MaxSeqs: 4, ReserveMaxLen: true})
	q := &Seq{ID: 1, Tokens: prompt(6, 0), MaxLen: 1000}
	s.Add(q)
	p := s.Schedule()
	if items(p) != "1:0+6 " {
		t.Fatalf("oversize sequence not admitted alone: plan %q", items(p))
	}
}
