package engine

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

// loadTiny loads the shared tiny Llama-3 test model on the CPU backend.
func loadTiny(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.Load(shareddata.Path(t, "models", "llama3-gqa"), cpu.New())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// newEngine starts an engine over the tiny model and closes it at cleanup.
func newEngine(t testing.TB, m *model.Model, cfg Config) *Engine {
	t.Helper()
	if cfg.NumBlocks == 0 && cfg.KVMemoryBytes == 0 {
		cfg.NumBlocks = 256
	}
	cfg.VocabSize = m.Config.VocabSize
	cfg.MaxContextTokens = m.Config.MaxPositionEmbeddings
	cfg.EOSTokenIDs = m.Config.EOSIDs()
	e, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// completion is what one completion of a request produced.
type completion struct {
	tokens []int32
	text   string
	reason FinishReason
	err    error
	cached int
	events int
	// queued is the QueueSeconds of each event, in order.
	queued []float64
}

// collect reads a request's stream to its end.
func collect(t testing.TB, ch <-chan Event, n int) []completion {
	t.Helper()
	out := make([]completion, n)
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			c := &out[ev.Index]
			c.events++
			c.queued = append(c.queued, ev.QueueSeconds)
			if ev.HasToken {
				c.tokens = append(c.tokens, ev.Token)
			}
			c.text += ev.Text
			if ev.Done {
				c.reason, c.err, c.cached = ev.FinishReason, ev.Err, ev.CachedPromptTokens
			}
		case <-timeout:
			t.Fatal("stream did not end within 60 s")
		}
	}
}

// generate submits a request and waits for its completions.
func generate(t testing.TB, e *Engine, req Request) []completion {
	t.Helper()
	ch, err := e.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return collect(t, ch, max(req.N, 1))
}

func randPrompt(r *rand.Rand, n, vocab int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(3 + r.IntN(vocab-3))
	}
	return p
}

func sameTokens(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// drain shuts the engine down (waiting for its requests) and checks that
// every KV block is back in the pool with consistent bookkeeping.
func drain(t testing.TB, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := e.kv.Check(); err != nil {
		t.Fatal(err)
	}
	if free := e.kv.NumFree(); free != e.kv.NumBlocks() {
		t.Fatalf("%d of %d KV blocks free after draining", free, e.kv.NumBlocks())
	}
	if st := e.Stats(); st.Running+st.Waiting != 0 || st.KVBlocksUsed != 0 {
		t.Fatalf("stats after draining: %+v", st)
	}
}
