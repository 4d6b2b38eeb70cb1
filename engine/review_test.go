package engine

import (
	"context"
	"errors"
	"math"
	"testing"
)

// TestSubmitRejectsOverflowingMaxTokens: a max_tokens so large that prompt
// plus max_tokens overflows int must be refused, not accepted as fitting.
func TestSubmitRejectsOverflowingMaxTokens(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{NumBlocks: 8, BlockSizeTokens: 16})
	for _, mt := range []int{math.MaxInt, math.MaxInt - 1, math.MaxInt / 2 * 2} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := e.Submit(ctx, Request{PromptIDs: []int32{1, 2, 3}, MaxTokens: mt, IgnoreEOS: true})
		cancel()
		if !errors.Is(err, ErrContextTooLong) {
			t.Errorf("max tokens %d: err %v, want ErrContextTooLong", mt, err)
		}
	}
}
