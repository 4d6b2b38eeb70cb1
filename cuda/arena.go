package cuda

import (
	"fmt"
	"sort"
)

// arenaAlign is the alignment of every arena allocation (enough for 16-byte
// vector loads and cuBLASLt's 256-byte preference).
const arenaAlign = 256

// arena is a first-fit allocator of offsets inside one device allocation of
// size bytes. Free ranges are kept sorted by offset and coalesced, so
// freeing in any order returns the space. It does no device calls and is
// not safe for concurrent use (the backend is single-goroutine).
type arena struct {
	size int64
	free []span // sorted by off, non-adjacent
	used int64
}

type span struct{ off, n int64 }

func newArena(size int64) *arena {
	return &arena{size: size, free: []span{{0, size}}}
}

// alloc returns the offset of n bytes (rounded up to arenaAlign).
func (a *arena) alloc(n int64) (int64, error) {
	if n <= 0 {
		n = arenaAlign
	}
	n = (n + arenaAlign - 1) / arenaAlign * arenaAlign
	for i, s := range a.free {
		if s.n < n {
			continue
		}
		off := s.off
		if s.n == n {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = span{s.off + n, s.n - n}
		}
		a.used += n
		return off, nil
	}
	return 0, fmt.Errorf("cuda: arena out of memory: %d bytes wanted, %d of %d in use (raise --gpu-memory-utilization)", n, a.used, a.size)
}

// release returns the n bytes at off (n as passed to alloc).
func (a *arena) release(off, n int64) {
	if n <= 0 {
		n = arenaAlign
	}
	n = (n + arenaAlign - 1) / arenaAlign * arenaAlign
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > off })
	a.free = append(a.free, span{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = span{off, n}
	a.used -= n
	// coalesce with the next, then with the previous
	if i+1 < len(a.free) && a.free[i].off+a.free[i].n == a.free[i+1].off {
		a.free[i].n += a.free[i+1].n
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == a.free[i].off {
		a.free[i-1].n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
}
