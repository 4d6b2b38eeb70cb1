package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// letters decodes token id i as the letter 'a'+i%26.
type letters struct{}

func (letters) NewStreamDecoder() StreamDecoder { return letterDecoder{} }

type letterDecoder struct{}

func (letterDecoder) Add(id int32) string { return string(rune('a' + id%26)) }

func TestStopConditions(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{Detokenizer: letters{}})
	prompt := randPrompt(rand.New(rand.NewPCG(11, 12)), 20, m.Config.VocabSize)
	base := generate(t, e, Request{PromptIDs: prompt, MaxTokens: 12, IgnoreEOS: true})[0]
	if len(base.tokens) != 12 || base.reason != FinishLength || len(base.text) != 12 {
		t.Fatalf("baseline: %+v", base)
	}
	stopAt := 5
	tests := []struct {
		name       string
		req        Request
		wantTokens int
		wantText   string
		wantReason FinishReason
	}{
		{"max tokens", Request{MaxTokens: 3}, 3, base.text[:3], FinishLength},
		{"stop token id", Request{MaxTokens: 12, StopTokenIDs: []int32{base.tokens[stopAt]}}, 0, "", FinishStop},
		{"stop string", Request{MaxTokens: 12, StopStrings: []string{base.text[stopAt : stopAt+2]}}, 0, "", FinishStop},
		{"stop string never matching", Request{MaxTokens: 12, StopStrings: []string{base.text[3:5] + "?"}}, 12, base.text, FinishLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PromptIDs, tc.req.IgnoreEOS = prompt, true
			got := generate(t, e, tc.req)[0]
			if tc.wantReason == FinishStop {
				// The stop token, or the token completing the stop string,
				// is the first occurrence at or before stopAt(+1).
				first := -1
				for i, id := range base.tokens {
					if tc.req.StopTokenIDs != nil && id == tc.req.StopTokenIDs[0] ||
						tc.req.StopStrings != nil && strings.Contains(base.text[:i+1], tc.req.StopStrings[0]) {
						first = i
						break
					}
				}
				tc.wantTokens = first + 1
				if tc.req.StopStrings != nil {
					tc.wantText = base.text[:strings.Index(base.text, tc.req.StopStrings[0])]
				} else {
					tc.wantText = base.text[:first]
				}
			}
			if len(got.tokens) != tc.wantTokens || got.text != tc.wantText || got.reason != tc.wantReason {
				t.Errorf("got %d tokens %q %s, want %d tokens %q %s", len(got.tokens), got.text, got.reason, tc.wantTokens, tc.wantText, tc.wantReason)
			}
		})
	}
}

func TestEOSEndsUnlessIgnored(t *testing.T) {
	m := loadTiny(t)
	prompt := []int32{9, 8, 7, 6}
	plain := newEngine(t, m, Config{})
	base := generate(t, plain, Request{PromptIDs: prompt, MaxTokens: 6, IgnoreEOS: true})[0]
	// Make the third generated token the model's EOS.
	e, err := New(m, Config{NumBlocks: 64, EOSTokenIDs: []int32{base.tokens[2]}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := generate(t, e, Request{PromptIDs: prompt, MaxTokens: 6})[0]
	if len(got.tokens) != 3 || got.reason != FinishStop {
		t.Errorf("with EOS: %v %s, want 3 tokens and stop", got.tokens, got.reason)
	}
	if got := generate(t, e, Request{PromptIDs: prompt, MaxTokens: 6, IgnoreEOS: true})[0]; len(got.tokens) != 6 {
		t.Errorf("IgnoreEOS: %v", got.tokens)
	}
}

func TestNCompletionsShareThePromptAndAreReproducible(t *testing.T) {
	m := loadTiny(t)
	prompt := randPrompt(rand.New(rand.NewPCG(13, 14)), 40, m.Config.VocabSize)
	req := Request{PromptIDs: prompt, MaxTokens: 8, N: 3, IgnoreEOS: true}
	req.Params.Temperature, req.Params.Seed, req.Params.HasSeed = 1, 42, true
	e := newEngine(t, m, Config{DisablePrefixCache: true})
	got := generate(t, e, req)
	for i, c := range got {
		if len(c.tokens) != 8 || c.reason != FinishLength {
			t.Fatalf("completion %d: %+v", i, c)
		}
	}
	if got[1].cached != 32 || got[2].cached != 32 {
		t.Errorf("forked completions cached %d and %d prompt tokens, want 32", got[1].cached, got[2].cached)
	}
	if sameTokens(got[0].tokens, got[1].tokens) && sameTokens(got[1].tokens, got[2].tokens) {
		t.Errorf("three sampled completions are identical: %v", got[0].tokens)
	}
	again := generate(t, e, req)
	one := req
	one.N = 1
	alone := generate(t, e, one)[0]
	for i := range got {
		if !sameTokens(got[i].tokens, again[i].tokens) {
			t.Errorf("completion %d not reproducible with a seed: %v vs %v", i, got[i].tokens, again[i].tokens)
		}
	}
	if !sameTokens(alone.tokens, got[0].tokens) {
		t.Errorf("completion 0 %v differs from the n=1 request %v", got[0].tokens, alone.tokens)
	}
	drain(t, e)
}

func TestSubmitRejectsBadRequests(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{NumBlocks: 8, BlockSizeTokens: 16})
	tests := []struct {
		name string
		req  Request
		want error
		msg  string
	}{
		{"empty prompt", Request{MaxTokens: 1}, ErrInvalidRequest, "empty"},
		{"negative max tokens", Request{PromptIDs: []int32{1}, MaxTokens: -1}, ErrInvalidRequest, "negative"},
		{"id outside vocabulary", Request{PromptIDs: []int32{1, 512}, MaxTokens: 1}, ErrInvalidRequest, "512"},
		{"too long", Request{PromptIDs: make([]int32, 100), MaxTokens: 50}, ErrContextTooLong, "prompt 100 + max_tokens 50 = 150 tokens, over the context of 128"},
		{"stop strings without tokenizer", Request{PromptIDs: []int32{1}, MaxTokens: 1, StopStrings: []string{"x"}}, ErrInvalidRequest, "tokenizer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Submit(context.Background(), tc.req)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	// MaxTokens 0 means up to the context.
	if got := generate(t, e, Request{PromptIDs: make([]int32, 120), IgnoreEOS: true})[0]; len(got.tokens) != 8 {
		t.Errorf("max tokens 0: %d tokens, want 8", len(got.tokens))
	}
}

func TestQueueFull(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{MaxQueue: 2, MaxSeqs: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	full := 0
	for i := 0; i < 10; i++ {
		_, err := e.Submit(ctx, Request{PromptIDs: []int32{1, 2, 3}, MaxTokens: 200, IgnoreEOS: true})
		if errors.Is(err, ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Error("10 submissions with a queue of 2 and one seat: none rejected")
	}
}

// TestSlowReaderDoesNotBlockOthers: a request whose stream nobody reads
// does not hold up another request.
func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := e.Submit(ctx, Request{PromptIDs: []int32{4, 5}, MaxTokens: 300, IgnoreEOS: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	done := make(chan []completion)
	go func() { done <- generate(t, e, Request{PromptIDs: []int32{6, 7}, MaxTokens: 100, IgnoreEOS: true}) }()
	select {
	case c := <-done:
		if len(c[0].tokens) != 100 {
			t.Errorf("second request: %d tokens", len(c[0].tokens))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second request blocked behind an unread stream")
	}
	cancel()
	drain(t, e)
}
