package kvcache

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// sim drives a Manager with random operations while simulating the KV
// store: every slot remembers the token whose K/V was written there, so a
// prefix hit or a fork that hands out a block with the wrong contents is
// caught, as well as any bookkeeping inconsistency (Manager.Check).
type sim struct {
	t     testing.TB
	m     *Manager
	bs    int
	slots []int32 // token written at each slot, -1 if never
	live  []*simSeq
}

type simSeq struct {
	kv       Seq
	tokens   []int32
	computed int
}

func newSim(t testing.TB, blocks, bs int) *sim {
	s := &sim{t: t, m: newManager(t, blocks, bs), bs: bs, slots: make([]int32, blocks*bs)}
	for i := range s.slots {
		s.slots[i] = -1
	}
	return s
}

func (s *sim) slot(q *simSeq, pos int) int {
	return int(q.kv.Blocks[pos/s.bs])*s.bs + pos%s.bs
}

// verify checks that the cache holds q's tokens at positions [0, n).
func (s *sim) verify(q *simSeq, n int, what string) {
	for p := 0; p < n; p++ {
		if got := s.slots[s.slot(q, p)]; got != q.tokens[p] {
			s.t.Fatalf("%s: position %d holds token %d, want %d", what, p, got, q.tokens[p])
		}
	}
}

// compute writes q's tokens up to n and commits them.
func (s *sim) compute(q *simSeq, n int) {
	for p := q.computed; p < n; p++ {
		s.slots[s.slot(q, p)] = q.tokens[p]
	}
	q.computed = n
	s.m.Commit(&q.kv, q.tokens, n)
}

func (s *sim) step(op, a, b int) {
	m := s.m
	switch {
	case op%4 == 0 || len(s.live) == 0: // admit a new sequence
		prefixes := [][]int32{seqTokens(40, 1), seqTokens(40, 1000)}
		n := 1 + a%40
		toks := append([]int32{}, prefixes[b%2][:n]...)
		for i := 0; i < b%9; i++ {
			toks = append(toks, int32(5000+a*7+i))
		}
		q := &simSeq{tokens: toks}
		chunk := 1 + b%len(toks)
		cached, err := m.Admit(&q.kv, toks, len(toks)-1, chunk)
		if errors.Is(err, ErrNoBlocks) {
			return
		}
		if err != nil {
			s.t.Fatal(err)
		}
		if cached%s.bs != 0 || cached > len(toks)-1 {
			s.t.Fatalf("cached %d of %d tokens", cached, len(toks))
		}
		q.computed = cached
		s.verify(q, cached, "prefix hit")
		s.compute(q, min(len(toks), cached+chunk))
		s.live = append(s.live, q)
	case op%4 == 1: // grow: compute more tokens, appending generated ones
		q := s.live[a%len(s.live)]
		n := q.computed + 1 + b%20
		for len(q.tokens) < n {
			q.tokens = append(q.tokens, int32(9000+len(q.tokens)+a))
		}
		if err := m.Reserve(&q.kv, n); err != nil {
			if !errors.Is(err, ErrNoBlocks) {
				s.t.Fatal(err)
			}
			return
		}
		s.compute(q, n)
	case op%4 == 2: // fork
		p := s.live[a%len(s.live)]
		c, shared := m.Fork(&p.kv, p.computed)
		q := &simSeq{kv: *c, tokens: append([]int32{}, p.tokens[:shared]...), computed: shared}
		q.tokens = append(q.tokens, int32(7000+b))
		s.verify(q, shared, "fork")
		s.live = append(s.live, q)
	default: // free
		i := a % len(s.live)
		m.Free(&s.live[i].kv)
		s.live = append(s.live[:i], s.live[i+1:]...)
	}
	seqs := make([]*Seq, len(s.live))
	for i, q := range s.live {
		seqs[i] = &q.kv
	}
	if err := m.Check(seqs...); err != nil {
		s.t.Fatalf("after op %d: %v", op%4, err)
	}
}

func (s *sim) freeAll() {
	for _, q := range s.live {
		s.m.Free(&q.kv)
	}
	s.live = nil
	if err := s.m.Check(); err != nil {
		s.t.Fatal(err)
	}
	if s.m.NumFree() != s.m.NumBlocks() {
		s.t.Fatalf("after freeing everything: %d of %d blocks free", s.m.NumFree(), s.m.NumBlocks())
	}
}

func TestManagerRandomOperationsKeepInvariants(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 42))
		s := newSim(t, 6+r.IntN(30), 1+r.IntN(8))
		for i := 0; i < 400; i++ {
			s.step(r.IntN(4), r.IntN(1000), r.IntN(1000))
		}
		s.freeAll()
		st := s.m.Stats()
		if st.HitBlocks == 0 {
			t.Errorf("seed %d: no prefix hits in 400 operations: %+v", seed, st)
		}
	}
}

func FuzzManager(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 5, 7, 1, 3, 9, 2, 0, 0, 3, 1, 1})
	f.Add([]byte{0, 9, 9, 0, 9, 9, 2, 0, 0, 1, 4, 4, 3, 0, 0, 0, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		s := newSim(t, 2+int(data[0])%20, 1+int(data[1])%6)
		for i := 2; i+2 < len(data); i += 3 {
			s.step(int(data[i]), int(data[i+1]), int(data[i+2]))
		}
		s.freeAll()
	})
}
