package engine

import "testing"

// TestFirstEventCarriesQueueTime: each completion's first token reports how
// long the request waited to be scheduled, and no later event repeats it.
func TestFirstEventCarriesQueueTime(t *testing.T) {
	e := newEngine(t, loadTiny(t), Config{})
	got := generate(t, e, Request{PromptIDs: []int32{5, 6, 7, 8}, MaxTokens: 4, N: 2, IgnoreEOS: true})
	for i, c := range got {
		if len(c.queued) < 2 || c.queued[0] <= 0 {
			t.Fatalf("completion %d: queue times %v, want a positive first value", i, c.queued)
		}
		for _, q := range c.queued[1:] {
			if q != 0 {
				t.Fatalf("completion %d: queue time repeated on a later event: %v", i, c.queued)
			}
		}
	}
}
