package kvcache

import (
	"errors"
	"testing"
)

func newManager(t testing.TB, blocks, bs int) *Manager {
	t.Helper()
	m, err := New(Config{NumBlocks: blocks, BlockSizeTokens: bs, Identity: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func seqTokens(n int, base int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = base + int32(i)
	}
	return out
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{{NumBlocks: 0, BlockSizeTokens: 16}, {NumBlocks: 4, BlockSizeTokens: 0}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func TestAdmitReusesCommittedPrefix(t *testing.T) {
	tests := []struct {
		name       string
		first      int // tokens of the first sequence (committed)
		second     int // tokens of the second, sharing the first's prefix
		maxCached  int
		wantCached int
	}{
		{"three full blocks shared", 50, 60, 59, 48},
		{"partial block not shared", 10, 20, 19, 0},
		{"cap leaves the last token to compute", 48, 48, 47, 32},
		{"exact blocks without cap", 48, 48, 48, 48},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, 16, 16)
			toks := seqTokens(100, 7)
			var a Seq
			if _, err := m.Admit(&a, toks[:tc.first], 0, tc.first); err != nil {
				t.Fatal(err)
			}
			m.Commit(&a, toks[:tc.first], tc.first)
			var b Seq
			got, err := m.Admit(&b, toks[:tc.second], tc.maxCached, tc.second)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.wantCached {
				t.Fatalf("cached %d tokens, want %d", got, tc.wantCached)
			}
			for i := 0; i < got/16; i++ {
				if a.Blocks[i] != b.Blocks[i] {
					t.Fatalf("block %d not shared: %d vs %d", i, a.Blocks[i], b.Blocks[i])
				}
			}
			if err := m.Check(&a, &b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDifferentIdentityOrTokensDoNotMatch(t *testing.T) {
	m := newManager(t, 8, 4)
	toks := seqTokens(8, 1)
	var a Seq
	if _, err := m.Admit(&a, toks, 0, 8); err != nil {
		t.Fatal(err)
	}
	m.Commit(&a, toks, 8)
	other := append([]int32{99}, toks[1:]...)
	var b Seq
	got, err := m.Admit(&b, other, 8, 8)
	if err != nil || got != 0 {
		t.Fatalf("changed first token: cached %d, err %v; want 0", got, err)
	}
	// The second block's tokens match but its parent does not.
	m2, _ := New(Config{NumBlocks: 8, BlockSizeTokens: 4, Identity: "other model"})
	var c Seq
	if got, _ := m2.Admit(&c, toks, 8, 8); got != 0 {
		t.Fatalf("fresh manager cached %d", got)
	}
}

func TestEvictsLeastRecentlyUsedCachedBlock(t *testing.T) {
	m := newManager(t, 4, 2)
	a, b := seqTokens(2, 100), seqTokens(2, 200)
	for _, toks := range [][]int32{a, b} {
		var s Seq
		if _, err := m.Admit(&s, toks, 0, 2); err != nil {
			t.Fatal(err)
		}
		m.Commit(&s, toks, 2)
		m.Free(&s)
	}
	// Two empty blocks are used before any cached one is evicted.
	var big Seq
	if err := m.Reserve(&big, 4); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Evictions != 0 || st.CachedBlocks != 2 {
		t.Fatalf("after using empty blocks: %+v", st)
	}
	// The next block evicts a (freed first), keeping b.
	if err := m.Reserve(&big, 6); err != nil {
		t.Fatal(err)
	}
	var s Seq
	if got, _ := m.Admit(&s, append(append([]int32{}, b...), 1), 2, 0); got != 2 {
		t.Fatalf("b should still be cached, got %d cached tokens", got)
	}
	m.Free(&s)
	if err := m.Reserve(&big, 8); err != nil {
		t.Fatal(err)
	}
	if err := m.Reserve(&big, 9); !errors.Is(err, ErrNoBlocks) {
		t.Fatalf("over-allocation: err %v, want ErrNoBlocks", err)
	}
	if st := m.Stats(); st.Evictions != 2 || st.FreeBlocks != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := m.Check(&big); err != nil {
		t.Fatal(err)
	}
}

func TestAdmitIsAllOrNothing(t *testing.T) {
	m := newManager(t, 4, 4)
	toks := seqTokens(8, 1)
	var a Seq
	m.Admit(&a, toks, 0, 8)
	m.Commit(&a, toks, 8)
	m.Free(&a)
	var hog Seq
	if err := m.Reserve(&hog, 8); err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	var b Seq
	long := seqTokens(20, 1)
	if _, err := m.Admit(&b, long, 19, 20); !errors.Is(err, ErrNoBlocks) {
		t.Fatalf("err %v, want ErrNoBlocks", err)
	}
	if len(b.Blocks) != 0 || m.Stats() != before {
		t.Fatalf("failed Admit changed state: %v, %+v vs %+v", b.Blocks, m.Stats(), before)
	}
	if err := m.Check(&hog); err != nil {
		t.Fatal(err)
	}
}

func TestForkSharesComputedFullBlocks(t *testing.T) {
	m := newManager(t, 8, 4)
	toks := seqTokens(10, 1)
	var p Seq
	m.Admit(&p, toks, 0, 10)
	m.Commit(&p, toks, 10)
	c, shared := m.Fork(&p, 10)
	if shared != 8 || len(c.Blocks) != 2 || c.Blocks[0] != p.Blocks[0] || c.Blocks[1] != p.Blocks[1] {
		t.Fatalf("fork shared %d tokens, blocks %v of %v", shared, c.Blocks, p.Blocks)
	}
	if err := m.Reserve(c, 10); err != nil {
		t.Fatal(err)
	}
	if c.Blocks[2] == p.Blocks[2] {
		t.Fatal("child got the parent's partial block")
	}
	m.Free(&p)
	if err := m.Check(c); err != nil {
		t.Fatal(err)
	}
	m.Free(c)
	if m.NumFree() != 8 {
		t.Fatalf("free %d, want 8", m.NumFree())
	}
}
