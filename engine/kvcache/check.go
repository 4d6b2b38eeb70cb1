package kvcache

import "fmt"

// Check verifies the Manager's internal consistency: every unreferenced
// block is on exactly one free list (empty or LRU), no referenced block is,
// the LRU links agree with its length, and the prefix-cache index and the
// blocks' cached marks agree. If seqs lists every live sequence, it also
// checks that each block's reference count equals the number of tables
// holding it. It is meant for tests and debugging; it costs O(NumBlocks).
func (m *Manager) Check(seqs ...*Seq) error {
	onList := make([]int8, len(m.blocks))
	for _, id := range m.empty {
		onList[id]++
		if m.blocks[id].cached {
			return fmt.Errorf("kvcache: empty-list block %d is cached", id)
		}
	}
	n := 0
	prev := int32(-1)
	for id := m.lruHead; id >= 0; id = m.blocks[id].next {
		if n++; n > len(m.blocks) {
			return fmt.Errorf("kvcache: LRU list has a cycle")
		}
		if m.blocks[id].prev != prev {
			return fmt.Errorf("kvcache: LRU block %d: prev %d, want %d", id, m.blocks[id].prev, prev)
		}
		if !m.blocks[id].cached {
			return fmt.Errorf("kvcache: LRU block %d is not cached", id)
		}
		onList[id]++
		prev = id
	}
	if n != m.lruLen || prev != m.lruTail {
		return fmt.Errorf("kvcache: LRU list: walked %d blocks ending at %d, recorded %d ending at %d", n, prev, m.lruLen, m.lruTail)
	}
	multi := 0
	for id := range m.blocks {
		b := &m.blocks[id]
		if b.ref > 1 {
			multi++
		}
		switch {
		case b.ref < 0:
			return fmt.Errorf("kvcache: block %d: negative reference count %d", id, b.ref)
		case b.ref == 0 && onList[id] != 1:
			return fmt.Errorf("kvcache: free block %d is on %d free lists", id, onList[id])
		case b.ref > 0 && onList[id] != 0:
			return fmt.Errorf("kvcache: block %d has %d references but is on a free list", id, b.ref)
		}
		if b.cached {
			if got, ok := m.byHash[b.hash]; !ok || got != int32(id) {
				return fmt.Errorf("kvcache: cached block %d missing from the index", id)
			}
		}
	}
	if multi != m.multi {
		return fmt.Errorf("kvcache: %d blocks have several references, %d counted", multi, m.multi)
	}
	for h, id := range m.byHash {
		if b := &m.blocks[id]; !b.cached || b.hash != h {
			return fmt.Errorf("kvcache: index entry for block %d is stale", id)
		}
	}
	if seqs == nil {
		return nil
	}
	refs := make([]int32, len(m.blocks))
	for _, s := range seqs {
		if len(s.hashes) > len(s.Blocks) {
			return fmt.Errorf("kvcache: sequence has %d hashes for %d blocks", len(s.hashes), len(s.Blocks))
		}
		for _, id := range s.Blocks {
			refs[id]++
		}
	}
	for id := range m.blocks {
		if refs[id] != m.blocks[id].ref {
			return fmt.Errorf("kvcache: block %d: %d references recorded, %d tables hold it", id, m.blocks[id].ref, refs[id])
		}
	}
	return nil
}
