package backend

import (
	"strings"
	"testing"
)

// TestValidateRejectsInconsistentBatches feeds batches whose query starts or
// context lengths disagree with their rows: Validate must return an error
// (never panic, never accept a negative position or slot).
func TestValidateRejectsInconsistentBatches(t *testing.T) {
	cases := []struct {
		name string
		b    *Batch
		want string
	}{
		{"query start past the last row", &Batch{
			Tokens: []int32{1, 2, 3}, Positions: []int32{0, 1, 2}, Slots: []int32{0, 1, 2},
			QueryStart: []int32{0, 5, 3}, ContextLen: []int32{5, 1}, BlockTables: [][]int32{{0}, {1}},
		}, "query start"},
		{"context shorter than the new tokens, empty block table", &Batch{
			Tokens: []int32{1}, Positions: []int32{-1}, Slots: []int32{-1},
			QueryStart: []int32{0, 1}, ContextLen: []int32{0}, BlockTables: [][]int32{{}},
		}, "context"},
		{"negative position and slot", &Batch{
			Tokens: []int32{1}, Positions: []int32{-1}, Slots: []int32{-1},
			QueryStart: []int32{0, 1}, ContextLen: []int32{0}, BlockTables: [][]int32{{0}},
		}, "context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Validate panicked: %v", r)
					}
				}()
				err = tc.b.Validate(4, 16)
			}()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	ok := &Batch{
		Tokens: []int32{1, 2, 3}, Positions: []int32{0, 1, 4}, Slots: []int32{0, 1, 20},
		QueryStart: []int32{0, 2, 3}, ContextLen: []int32{2, 5}, BlockTables: [][]int32{{0}, {1}},
	}
	if err := ok.Validate(4, 16); err != nil {
		t.Fatalf("consistent batch rejected: %v", err)
	}
}

func TestQKVHeads(t *testing.T) {
	cases := []struct {
		numel, rows, kv, hd, want int
		ok                        bool
	}{
		{3 * (8 + 2*2) * 16, 3, 2, 16, 8, true},
		{(4 + 2) * 64, 1, 1, 64, 4, true},
		{2 * 2 * 16, 1, 2, 16, 0, false}, // no room for query heads
		{100, 3, 1, 16, 0, false},        // rows do not divide
		{(8+4)*16 + 8, 1, 2, 16, 0, false},
		{0, 0, 1, 16, 0, false},
	}
	for _, c := range cases {
		got, err := QKVHeads(c.numel, c.rows, c.kv, c.hd)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("QKVHeads(%d, %d, %d, %d) = %d, %v; want %d (ok %v)", c.numel, c.rows, c.kv, c.hd, got, err, c.want, c.ok)
		}
	}
}
