package sched

import (
	"testing"

	"github.com/tokamak-ai/tokamak/engine/kvcache"
)

// TestSchedulerDoesNotLivelockOnBlocksHeldByWaitingForks: as in
// TestSchedulerDoesNotStallOnBlocksHeldByWaitingForks, a waiting fork
// holds half the pool, but the interactive request is admitted in small
// chunks and only runs out of blocks mid-prefill. Preempting itself and
// being readmitted at once, it must not go round forever while the fork
// keeps its blocks (here with prefix caching off, so nothing is reused).
func TestSchedulerDoesNotLivelockOnBlocksHeldByWaitingForks(t *testing.T) {
	kv, err := kvcache.New(kvcache.Config{NumBlocks: 4, BlockSizeTokens: 2, DisablePrefixCache: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{MaxBatchTokens: 2, MaxSeqs: 1}, kv)
	if err != nil {
		t.Fatal(err)
	}
	parent := &Seq{ID: 1, Tokens: prompt(5, 0), Priority: Batch}
	s.Add(parent)
	for parent.NumComputed < 5 {
		step(s, s.Schedule(), map[*Seq]int{parent: 100})
	}
	child := s.Fork(parent, 2, prompt(5, 0))
	s.Finish(parent)
	fg := &Seq{ID: 3, Tokens: prompt(7, 100), Priority: Interactive}
	s.Add(fg)
	if kv.NumFree() != 2 || child.NumComputed != 4 {
		t.Fatalf("setup: %d free blocks, child computed %d", kv.NumFree(), child.NumComputed)
	}
	target := map[*Seq]int{fg: 8, child: 6}
	for i := 0; i < 100 && fg.State() != Finished; i++ {
		p := s.Schedule()
		if p.Empty() {
			t.Fatalf("step %d: empty plan with %d waiting", i, s.NumWaiting())
		}
		step(s, p, target)
	}
	if fg.State() != Finished {
		t.Fatalf("the interactive request did not finish in 100 steps (%d preemptions, computed %d of %d)", fg.Preemptions, fg.NumComputed, len(fg.Tokens))
	}
}
