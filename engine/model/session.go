package model

import (
	"fmt"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// Session runs a single sequence on a private paged KV cache whose blocks
// are used in order. It is the simplest client of Forward: the CLI's
// one-shot generation and the reference tests use it; the serving engine
// manages blocks itself.
type Session struct {
	m         *Model
	cache     backend.KVCache
	blockSize int
	table     []int32
	len       int
}

// NewSession allocates a KV cache for up to maxTokens tokens.
func (m *Model) NewSession(maxTokens int) (*Session, error) {
	if maxTokens <= 0 || maxTokens > m.Config.MaxPositionEmbeddings {
		return nil, fmt.Errorf("session: %d tokens outside the model's context of %d", maxTokens, m.Config.MaxPositionEmbeddings)
	}
	const blockSize = 16
	blocks := (maxTokens + blockSize - 1) / blockSize
	cache, err := m.b.NewKVCache(m.KVSpec(blocks, blockSize))
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	table := make([]int32, blocks)
	for i := range table {
		table[i] = int32(i)
	}
	return &Session{m: m, cache: cache, blockSize: blockSize, table: table}, nil
}

// Close frees the session's KV cache; Feed fails afterwards. It is safe to
// call more than once.
func (s *Session) Close() {
	if s.cache != nil {
		s.m.b.FreeKVCache(s.cache)
		s.cache = nil
	}
}

// Len returns the number of tokens already in the cache.
func (s *Session) Len() int { return s.len }

// Feed runs the model over ids appended to the sequence and returns the
// logits of every new token (allRows) or of the last one, as rows of
// vocab floats.
func (s *Session) Feed(ids []int32, allRows bool) ([][]float32, error) {
	t := len(ids)
	if s.cache == nil {
		return nil, fmt.Errorf("session: closed")
	}
	if t == 0 {
		return nil, fmt.Errorf("session: no tokens to feed")
	}
	if s.len+t > len(s.table)*s.blockSize {
		return nil, fmt.Errorf("session: %d tokens exceed the session's capacity of %d", s.len+t, len(s.table)*s.blockSize)
	}
	batch := &backend.Batch{
		Tokens:      ids,
		Positions:   make([]int32, t),
		Slots:       make([]int32, t),
		QueryStart:  []int32{0, int32(t)},
		ContextLen:  []int32{int32(s.len + t)},
		BlockTables: [][]int32{s.table},
	}
	for i := range ids {
		p := s.len + i
		batch.Positions[i] = int32(p)
		batch.Slots[i] = s.table[p/s.blockSize]*int32(s.blockSize) + int32(p%s.blockSize)
		if allRows || i == t-1 {
			batch.LogitRows = append(batch.LogitRows, int32(i))
		}
	}
	logits, err := s.m.Forward(batch, s.cache)
	if err != nil {
		return nil, err
	}
	defer s.m.b.Free(logits)
	flat, err := s.m.b.Download(logits)
	if err != nil {
		return nil, fmt.Errorf("session: download logits: %w", err)
	}
	s.len += t
	v := s.m.Config.VocabSize
	rows := make([][]float32, len(batch.LogitRows))
	for i := range rows {
		rows[i] = flat[i*v : (i+1)*v]
	}
	return rows, nil
}
