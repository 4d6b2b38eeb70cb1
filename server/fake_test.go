package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine"
)

var (
	errFakeQueueFull = errors.New("fake: queue full")
	errFakeShutdown  = errors.New("fake: shutting down")
)

// fakeEngine generates token (last prompt id + step + 1) % 100 each step,
// ends at MaxTokens or on token eos, and honours cancellation. With
// capacity > 0 it refuses requests beyond that many live ones.
type fakeEngine struct {
	stepDelay time.Duration
	capacity  int
	eos       int32
	withText  bool
	shutdown  atomic.Bool
	active    atomic.Int64
	submitted atomic.Int64
	mu        sync.Mutex
	lastReq   engine.Request
}

func (f *fakeEngine) Submit(ctx context.Context, req engine.Request) (<-chan engine.Event, error) {
	if f.shutdown.Load() {
		return nil, errFakeShutdown
	}
	if f.capacity > 0 && f.active.Add(1) > int64(f.capacity) {
		f.active.Add(-1)
		return nil, errFakeQueueFull
	} else if f.capacity <= 0 {
		f.active.Add(1)
	}
	f.submitted.Add(1)
	f.mu.Lock()
	f.lastReq = req
	f.mu.Unlock()
	n := max(req.N, 1)
	ch := make(chan engine.Event)
	go func() {
		defer close(ch)
		defer f.active.Add(-1)
		var wg sync.WaitGroup
		for idx := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.generate(ctx, req, idx, ch)
			}()
		}
		wg.Wait()
	}()
	return ch, nil
}

func (f *fakeEngine) generate(ctx context.Context, req engine.Request, idx int, ch chan<- engine.Event) {
	last := req.PromptIDs[len(req.PromptIDs)-1]
	send := func(ev engine.Event) bool {
		ev.Index = idx
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for step := range req.MaxTokens {
		if f.stepDelay > 0 {
			select {
			case <-time.After(f.stepDelay):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			ch <- engine.Event{Index: idx, Done: true, FinishReason: engine.FinishCancelled, PromptTokens: len(req.PromptIDs)}
			return
		}
		tok := (last + int32(step) + 1 + int32(idx)) % 100
		ev := engine.Event{Token: tok, HasToken: true}
		if f.withText {
			ev.Text = fmt.Sprintf("t%d ", tok)
		}
		if req.Params.Logprobs {
			ev.Logprob = -0.5
			for k := range req.Params.TopLogprobs {
				ev.TopLogprobs = append(ev.TopLogprobs, engine.TokenLogprob{ID: tok + int32(k), Logprob: -0.5 - float32(k)})
			}
		}
		finish := engine.FinishReason("")
		if tok == f.eos && !req.IgnoreEOS {
			finish = engine.FinishStop
		} else if step == req.MaxTokens-1 {
			finish = engine.FinishLength
		}
		if finish != "" {
			ev.Done, ev.FinishReason, ev.PromptTokens = true, finish, len(req.PromptIDs)
		}
		if !send(ev) {
			ch <- engine.Event{Index: idx, Done: true, FinishReason: engine.FinishCancelled}
			return
		}
		if finish != "" {
			return
		}
	}
}

func classifyFake(err error) ErrorClass {
	switch {
	case errors.Is(err, errFakeQueueFull):
		return ErrorQueueFull
	case errors.Is(err, errFakeShutdown):
		return ErrorShutdown
	}
	return ErrorInternal
}

// fakeTokenizer maps each whitespace-separated word to len(word) and
// renders chats as "role: content\n".
type fakeTokenizer struct{}

func (fakeTokenizer) Encode(text string, addSpecial bool) ([]int32, error) {
	var ids []int32
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, w := range strings.Fields(text) {
		ids = append(ids, int32(len(w)))
	}
	return ids, nil
}

func (fakeTokenizer) Decode(ids []int32) (string, error) {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "t%d ", id)
	}
	return b.String(), nil
}

func (fakeTokenizer) HasChatTemplate() bool { return true }

func (fakeTokenizer) ApplyChatTemplate(msgs []ChatMessage, addGen bool) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
	}
	if addGen {
		b.WriteString("assistant:")
	}
	return b.String(), nil
}

// newFakeServer starts an httptest server over a fake engine.
func newFakeServer(t testing.TB, f *fakeEngine, tok Tokenizer, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	m := &Model{Name: "fake", Engine: f, MaxContext: 64, ClassifyError: classifyFake,
		Stats: func() EngineStats { return EngineStats{Running: int(f.active.Load()), KVUsage: 0.25} }}
	if tok != nil {
		m.Tokenizer = tok
	}
	s.SetModel(m)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp
}
