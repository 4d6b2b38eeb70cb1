package cuda

import (
	"math/rand"
	"testing"
)

func TestArenaReusesFreedSpaceInAnyOrder(t *testing.T) {
	a := newArena(1 << 20)
	r := rand.New(rand.NewSource(1))
	type blk struct{ off, n int64 }
	var live []blk
	for i := 0; i < 2000; i++ {
		if len(live) > 0 && r.Intn(2) == 0 {
			j := r.Intn(len(live))
			a.release(live[j].off, live[j].n)
			live = append(live[:j], live[j+1:]...)
			continue
		}
		n := int64(1 + r.Intn(20000))
		off, err := a.alloc(n)
		if err != nil {
			continue // full: fine, frees come next
		}
		if off%arenaAlign != 0 || off+n > a.size {
			t.Fatalf("alloc(%d) = %d: misaligned or out of range", n, off)
		}
		for _, b := range live {
			if off < b.off+b.n && b.off < off+n {
				t.Fatalf("alloc(%d) = %d overlaps [%d,%d)", n, off, b.off, b.off+b.n)
			}
		}
		live = append(live, blk{off, n})
	}
	for _, b := range live {
		a.release(b.off, b.n)
	}
	if a.used != 0 || len(a.free) != 1 || a.free[0] != (span{0, a.size}) {
		t.Fatalf("after freeing everything: used %d, free list %v", a.used, a.free)
	}
}

func TestArenaReportsExhaustion(t *testing.T) {
	a := newArena(4 * arenaAlign)
	if _, err := a.alloc(5 * arenaAlign); err == nil {
		t.Fatal("alloc larger than the arena succeeded")
	}
}
