package tokenizer

import (
	"container/heap"
	"sync"
)

// merge is one BPE merge rule: the pair's priority (lower merges first) and
// the id of the token it produces.
type merge struct {
	rank int32
	id   int32
}

// bpe is a rank-based byte-pair-encoding model over token ids.
type bpe struct {
	merges map[uint64]merge // key: left id << 32 | right id

	mu    sync.RWMutex
	cache map[string][]int32 // pre-token → ids, bounded by maxCacheWords
}

const (
	maxCacheWords   = 1 << 16
	maxCachedLength = 64 // bytes; longer words are rarely repeated
	naiveMaxSymbols = 96 // below this a quadratic scan beats a heap
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// cached returns the ids of word from the cache.
func (m *bpe) cached(word string) ([]int32, bool) {
	if len(word) > maxCachedLength {
		return nil, false
	}
	m.mu.RLock()
	ids, ok := m.cache[word]
	m.mu.RUnlock()
	return ids, ok
}

func (m *bpe) store(word string, ids []int32) {
	if len(word) > maxCachedLength {
		return
	}
	m.mu.Lock()
	if len(m.cache) >= maxCacheWords {
		clear(m.cache)
	}
	m.cache[word] = ids
	m.mu.Unlock()
}

// apply merges syms in place, lowest rank first and leftmost among equal
// ranks (the order tokenizers' priority queue gives), and returns the result.
func (m *bpe) apply(syms []int32) []int32 {
	if len(syms) < naiveMaxSymbols {
		return m.applyNaive(syms)
	}
	return m.applyHeap(syms)
}

func (m *bpe) applyNaive(syms []int32) []int32 {
	for len(syms) > 1 {
		best, bestAt := merge{rank: -1}, -1
		for i := 0; i+1 < len(syms); i++ {
			mg, ok := m.merges[pairKey(syms[i], syms[i+1])]
			if ok && (bestAt < 0 || mg.rank < best.rank) {
				best, bestAt = mg, i
			}
		}
		if bestAt < 0 {
			break
		}
		syms[bestAt] = best.id
		syms = append(syms[:bestAt+1], syms[bestAt+2:]...)
	}
	return syms
}

// candidate is a possible merge of the symbol at pos with its right
// neighbour, valid while both still hold left and right.
type candidate struct {
	rank, pos, left, right, id int32
}

type candidates []candidate

func (c candidates) Len() int { return len(c) }
func (c candidates) Less(i, j int) bool {
	if c[i].rank != c[j].rank {
		return c[i].rank < c[j].rank
	}
	return c[i].pos < c[j].pos
}
func (c candidates) Swap(i, j int) { c[i], c[j] = c[j], c[i] }
func (c *candidates) Push(x any)   { *c = append(*c, x.(candidate)) }
func (c *candidates) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// applyHeap is the O(n log n) merge loop for long words (SentencePiece-style
// models have no pre-tokenizer, so a whole paragraph is one word).
func (m *bpe) applyHeap(syms []int32) []int32 {
	n := len(syms)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	h := make(candidates, 0, n)
	push := func(i int32) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if mg, ok := m.merges[pairKey(syms[i], syms[j])]; ok {
			heap.Push(&h, candidate{rank: mg.rank, pos: i, left: syms[i], right: syms[j], id: mg.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(int32(i))
	}
	for h.Len() > 0 {
		c := heap.Pop(&h).(candidate)
		i := c.pos
		j := next[i]
		if !alive[i] || j < 0 || syms[i] != c.left || syms[j] != c.right {
			continue // stale
		}
		syms[i] = c.id
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		if prev[i] >= 0 {
			push(prev[i])
		}
		push(i)
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}
