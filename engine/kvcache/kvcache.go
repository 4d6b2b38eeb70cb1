// Package kvcache manages the blocks of the paged KV cache: which block
// holds which tokens of which sequence. It never touches K or V themselves;
// the backend's KVCache holds those, addressed by the block ids handed out
// here.
//
// A Manager owns a fixed pool of blocks of BlockSizeTokens slots. Each
// sequence has a block table (Seq.Blocks). Full blocks whose K/V have been
// computed are registered in a prefix cache under a hash chain over
// (parent block hash, token ids, model identity), so a later sequence with
// the same prefix reuses them instead of recomputing. Blocks carry
// reference counts; a block nobody references stays cached until the pool
// needs it, and such blocks are evicted least recently used first.
//
// A Manager is not safe for concurrent use: the engine loop owns it.
package kvcache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
)

// ErrNoBlocks reports that the pool has too few free blocks for a request;
// the caller (the scheduler) decides whether to wait or preempt.
var ErrNoBlocks = errors.New("kvcache: not enough free blocks")

// Config sizes a Manager.
type Config struct {
	// NumBlocks is the number of blocks in the pool (> 0).
	NumBlocks int
	// BlockSizeTokens is the number of token slots per block (> 0; 16 is usual).
	BlockSizeTokens int
	// Identity names the model (and adapter) whose K/V the blocks hold; it
	// seeds the hash chain so that caches of different models never match.
	Identity string
	// DisablePrefixCache turns off prefix matching and registration.
	DisablePrefixCache bool
}

// Seq is one sequence's block table. The zero value is an empty sequence.
// Only the Manager modifies it.
type Seq struct {
	// Blocks are the sequence's block ids, in position order.
	Blocks []int32
	// hashes[i] is the chain hash of Blocks[i]; len(hashes) is the number
	// of leading full blocks whose K/V are computed and hashed.
	hashes []uint64
}

// Stats are the Manager's counters, cumulative since New.
type Stats struct {
	NumBlocks int
	// FreeBlocks are blocks no sequence references (empty or cached).
	FreeBlocks int
	// CachedBlocks are blocks registered in the prefix cache (referenced or not).
	CachedBlocks int
	// HitBlocks and MissBlocks count full prompt blocks found or not found
	// in the prefix cache at admission.
	HitBlocks  int64
	MissBlocks int64
	// Evictions counts cached blocks dropped to make room.
	Evictions int64
}

// HitRatio is HitBlocks/(HitBlocks+MissBlocks), 0 before any lookup.
func (s Stats) HitRatio() float64 {
	if s.HitBlocks+s.MissBlocks == 0 {
		return 0
	}
	return float64(s.HitBlocks) / float64(s.HitBlocks+s.MissBlocks)
}

type block struct {
	ref    int32
	cached bool   // registered in Manager.byHash under hash
	hash   uint64 // valid when cached
	parent uint64 // parent chain hash, checked on lookup with tokens
	tokens []int32
	// prev and next link unreferenced cached blocks in LRU order; -1 ends.
	prev, next int32
}

// Manager hands out blocks of the KV pool and keeps the prefix cache.
type Manager struct {
	cfg    Config
	seed   maphash.Seed
	root   uint64
	blocks []block
	empty  []int32 // unreferenced, uncached blocks (a stack)
	// lruHead is the least recently used unreferenced cached block, lruTail
	// the most recent; -1 when there is none.
	lruHead, lruTail int32
	lruLen           int
	byHash           map[uint64]int32
	// multi counts blocks with more than one reference (Shared is 0
	// without reading a table when there are none)
	multi int
	stats Stats
	buf   []byte
}

// New makes a Manager with every block free.
func New(cfg Config) (*Manager, error) {
	if cfg.NumBlocks <= 0 || cfg.BlockSizeTokens <= 0 {
		return nil, fmt.Errorf("kvcache: need positive NumBlocks and BlockSizeTokens, got %d and %d", cfg.NumBlocks, cfg.BlockSizeTokens)
	}
	m := &Manager{
		cfg:     cfg,
		seed:    maphash.MakeSeed(),
		blocks:  make([]block, cfg.NumBlocks),
		empty:   make([]int32, 0, cfg.NumBlocks),
		lruHead: -1,
		lruTail: -1,
		byHash:  make(map[uint64]int32),
		buf:     make([]byte, 0, 8+4*cfg.BlockSizeTokens),
	}
	m.root = maphash.String(m.seed, "tokamak-kv:"+cfg.Identity)
	// Push in reverse so that block 0 is handed out first.
	for i := cfg.NumBlocks - 1; i >= 0; i-- {
		m.blocks[i].prev, m.blocks[i].next = -1, -1
		m.empty = append(m.empty, int32(i))
	}
	return m, nil
}

// BlockSizeTokens is the number of token slots per block.
func (m *Manager) BlockSizeTokens() int { return m.cfg.BlockSizeTokens }

// NumBlocks is the size of the pool.
func (m *Manager) NumBlocks() int { return m.cfg.NumBlocks }

// NumFree is the number of blocks no sequence references; all of them can
// be handed out (cached ones after eviction).
func (m *Manager) NumFree() int { return len(m.empty) + m.lruLen }

// Shared is the number of s's blocks that other sequences reference too
// (forks of one prompt, prefix-cache hits): freeing s would not free them.
func (m *Manager) Shared(s *Seq) int {
	if m.multi == 0 {
		return 0
	}
	n := 0
	for _, id := range s.Blocks {
		if m.blocks[id].ref > 1 {
			n++
		}
	}
	return n
}

// Usage is the fraction of blocks referenced by sequences, in [0,1].
func (m *Manager) Usage() float64 {
	return 1 - float64(m.NumFree())/float64(m.cfg.NumBlocks)
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	s := m.stats
	s.NumBlocks = m.cfg.NumBlocks
	s.FreeBlocks = m.NumFree()
	s.CachedBlocks = len(m.byHash)
	return s
}

// blocksFor is the number of blocks that hold n tokens.
func (m *Manager) blocksFor(n int) int {
	return (n + m.cfg.BlockSizeTokens - 1) / m.cfg.BlockSizeTokens
}

// chainHash is the hash of a full block of tokens following parent.
func (m *Manager) chainHash(parent uint64, tokens []int32) uint64 {
	b := binary.LittleEndian.AppendUint64(m.buf[:0], parent)
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint32(b, uint32(t))
	}
	m.buf = b
	return maphash.Bytes(m.seed, b)
}

// lookup returns the cached block holding tokens after parent, or -1.
// Token ids and parent are compared too, so a hash collision never shares
// a wrong block.
func (m *Manager) lookup(parent, h uint64, tokens []int32) int32 {
	id, ok := m.byHash[h]
	if !ok {
		return -1
	}
	b := &m.blocks[id]
	if b.parent != parent || len(b.tokens) != len(tokens) {
		return -1
	}
	for i, t := range tokens {
		if b.tokens[i] != t {
			return -1
		}
	}
	return id
}

// Admit prepares a sequence that holds no blocks to compute tokens: it
// takes the longest cached prefix of tokens (whole blocks, at most
// maxCachedTokens tokens) and allocates the blocks for newTokens more
// tokens after it (capped at len(tokens)). It returns the number of
// leading tokens already computed. It either succeeds entirely or changes
// nothing and returns ErrNoBlocks.
func (m *Manager) Admit(s *Seq, tokens []int32, maxCachedTokens, newTokens int) (cachedTokens int, err error) {
	if len(s.Blocks) != 0 {
		return 0, errors.New("kvcache: Admit on a sequence that holds blocks")
	}
	bs := m.cfg.BlockSizeTokens
	var hits []int32
	var hashes []uint64
	parent := m.root
	queried := 0
	if !m.cfg.DisablePrefixCache {
		maxCachedTokens = min(maxCachedTokens, len(tokens))
		queried = maxCachedTokens / bs
		for i := 0; i < queried; i++ {
			blk := tokens[i*bs : (i+1)*bs]
			h := m.chainHash(parent, blk)
			id := m.lookup(parent, h, blk)
			if id < 0 {
				break
			}
			hits = append(hits, id)
			hashes = append(hashes, h)
			parent = h
		}
	}
	cachedTokens = len(hits) * bs
	numTokens := min(len(tokens), cachedTokens+max(newTokens, 0))
	// Hit blocks that nobody references are counted as free; taking them
	// uses up free capacity too.
	freeHits := 0
	for _, id := range hits {
		if m.blocks[id].ref == 0 {
			freeHits++
		}
	}
	need := m.blocksFor(numTokens) - len(hits)
	if need+freeHits > m.NumFree() {
		return 0, ErrNoBlocks
	}
	for _, id := range hits {
		m.ref(id)
	}
	s.Blocks = append(s.Blocks, hits...)
	s.hashes = append(s.hashes, hashes...)
	for i := 0; i < need; i++ {
		s.Blocks = append(s.Blocks, m.take())
	}
	m.stats.HitBlocks += int64(len(hits))
	m.stats.MissBlocks += int64(queried - len(hits))
	return cachedTokens, nil
}

// Reserve makes sure the sequence has blocks for numTokens tokens,
// allocating what is missing. It either allocates all or nothing
// (ErrNoBlocks).
func (m *Manager) Reserve(s *Seq, numTokens int) error {
	need := m.blocksFor(numTokens) - len(s.Blocks)
	if need <= 0 {
		return nil
	}
	if need > m.NumFree() {
		return ErrNoBlocks
	}
	for i := 0; i < need; i++ {
		s.Blocks = append(s.Blocks, m.take())
	}
	return nil
}

// Commit records that the first numComputed of tokens now have their K/V
// in the sequence's blocks, and registers every newly full block in the
// prefix cache. tokens must be the sequence's tokens from position 0.
func (m *Manager) Commit(s *Seq, tokens []int32, numComputed int) {
	bs := m.cfg.BlockSizeTokens
	full := min(numComputed, len(tokens)) / bs
	full = min(full, len(s.Blocks))
	for i := len(s.hashes); i < full; i++ {
		parent := m.root
		if i > 0 {
			parent = s.hashes[i-1]
		}
		blk := tokens[i*bs : (i+1)*bs]
		h := m.chainHash(parent, blk)
		s.hashes = append(s.hashes, h)
		if m.cfg.DisablePrefixCache {
			continue
		}
		id := s.Blocks[i]
		b := &m.blocks[id]
		if _, dup := m.byHash[h]; dup || b.cached {
			// Another sequence computed the same block first (or this one
			// is shared already); keep that one as the cached copy.
			continue
		}
		b.cached, b.hash, b.parent = true, h, parent
		b.tokens = append(b.tokens[:0], blk...)
		m.byHash[h] = id
	}
}

// Fork makes a new sequence that shares the parent's first numTokens
// tokens, rounded down to whole blocks whose K/V are computed (committed).
// It returns the child and the number of tokens it shares; the child
// computes the rest itself. Fork never fails for lack of blocks.
func (m *Manager) Fork(parent *Seq, numTokens int) (*Seq, int) {
	n := min(numTokens/m.cfg.BlockSizeTokens, len(parent.hashes))
	child := &Seq{
		Blocks: append([]int32(nil), parent.Blocks[:n]...),
		hashes: append([]uint64(nil), parent.hashes[:n]...),
	}
	for _, id := range child.Blocks {
		m.ref(id)
	}
	return child, n * m.cfg.BlockSizeTokens
}

// Free drops the sequence's references and empties its table. Blocks it
// was the last to reference become free; cached ones stay matchable until
// evicted. Blocks are released last-first, so that a prefix's tail is
// evicted before its head.
func (m *Manager) Free(s *Seq) {
	for i := len(s.Blocks) - 1; i >= 0; i-- {
		id := s.Blocks[i]
		b := &m.blocks[id]
		b.ref--
		if b.ref == 1 {
			m.multi--
		}
		if b.ref > 0 {
			continue
		}
		if b.cached {
			m.lruPush(id)
		} else {
			m.empty = append(m.empty, id)
		}
	}
	s.Blocks = s.Blocks[:0]
	s.hashes = s.hashes[:0]
}

// ref takes a reference on block id, pulling it out of the LRU list if it
// was unreferenced.
func (m *Manager) ref(id int32) {
	b := &m.blocks[id]
	if b.ref == 0 && b.cached {
		m.lruRemove(id)
	}
	b.ref++
	if b.ref == 2 {
		m.multi++
	}
}

// take hands out a free block with one reference: an empty one if any,
// else the least recently used cached one, evicted. The caller has checked
// NumFree.
func (m *Manager) take() int32 {
	var id int32
	if n := len(m.empty); n > 0 {
		id = m.empty[n-1]
		m.empty = m.empty[:n-1]
	} else {
		id = m.lruHead
		m.lruRemove(id)
		b := &m.blocks[id]
		delete(m.byHash, b.hash)
		b.cached = false
		b.tokens = b.tokens[:0]
		m.stats.Evictions++
	}
	m.blocks[id].ref = 1
	return id
}

func (m *Manager) lruPush(id int32) {
	b := &m.blocks[id]
	b.prev, b.next = m.lruTail, -1
	if m.lruTail >= 0 {
		m.blocks[m.lruTail].next = id
	} else {
		m.lruHead = id
	}
	m.lruTail = id
	m.lruLen++
}

func (m *Manager) lruRemove(id int32) {
	b := &m.blocks[id]
	if b.prev >= 0 {
		m.blocks[b.prev].next = b.next
	} else {
		m.lruHead = b.next
	}
	if b.next >= 0 {
		m.blocks[b.next].prev = b.prev
	} else {
		m.lruTail = b.prev
	}
	b.prev, b.next = -1, -1
	m.lruLen--
}
