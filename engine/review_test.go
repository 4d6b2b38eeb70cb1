package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
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

// closingDecoders, on its first use (inside the loop's intake of request
// A), submits request B and has Close begin, so that B lands in the inbox
// after the loop took it and the loop next sees the abort.
type closingDecoders struct {
	e    **Engine
	once sync.Once
	b    chan (<-chan Event)
}

func (d *closingDecoders) NewStreamDecoder() StreamDecoder {
	d.once.Do(func() {
		e := *d.e
		ch, err := e.Submit(context.Background(), Request{PromptIDs: []int32{4, 5}, MaxTokens: 3, IgnoreEOS: true})
		if err != nil {
			panic(err)
		}
		d.b <- ch
		go e.Close()
		for {
			e.mu.Lock()
			abort := e.abort
			e.mu.Unlock()
			if abort {
				break
			}
			time.Sleep(time.Millisecond)
		}
	})
	return letterDecoder{}
}

// TestAbortEndsRequestsSubmittedDuringIntake: a request Submit accepted
// while Close runs gets its Done event and a closed channel, even when it
// reached the inbox after the loop's last intake.
func TestAbortEndsRequestsSubmittedDuringIntake(t *testing.T) {
	var e *Engine
	d := &closingDecoders{e: &e, b: make(chan (<-chan Event), 1)}
	f := &fakeRunner{fb: &fakeBackend{}, vocab: 64}
	var err error
	e, err = New(f, Config{NumBlocks: 64, BlockSizeTokens: 4, Detokenizer: d})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Submit(context.Background(), Request{PromptIDs: []int32{1, 2, 3}, MaxTokens: 3, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	b := <-d.b
	for name, ch := range map[string]<-chan Event{"A": a, "B": b} {
		var last Event
		timeout := time.After(10 * time.Second)
	read:
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					break read
				}
				last = ev
			case <-timeout:
				t.Fatalf("request %s never ended after Close", name)
			}
		}
		if !last.Done {
			t.Errorf("request %s: last event %+v is not Done", name, last)
		}
	}
}
