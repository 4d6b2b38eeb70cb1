package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestBatchInvariance: 32 concurrent greedy requests with different
// prompts and lengths give exactly the tokens each gives alone.
func TestBatchInvariance(t *testing.T) {
	m := loadTiny(t)
	vocab := m.Config.VocabSize
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([]Request, 32)
	for i := range reqs {
		reqs[i] = Request{PromptIDs: randPrompt(r, 1+r.IntN(70), vocab), MaxTokens: 1 + r.IntN(12)}
	}
	alone := newEngine(t, m, Config{DisablePrefixCache: true})
	want := make([][]int32, len(reqs))
	for i, req := range reqs {
		want[i] = generate(t, alone, req)[0].tokens
	}
	// A small token budget mixes chunked prefills with decodes.
	busy := newEngine(t, m, Config{MaxBatchTokens: 96})
	got := make([][]int32, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = generate(t, busy, req)[0].tokens
		}()
	}
	wg.Wait()
	for i := range reqs {
		if !sameTokens(got[i], want[i]) {
			t.Errorf("request %d (prompt %d): batched %v, alone %v", i, len(reqs[i].PromptIDs), got[i], want[i])
		}
	}
	if st := busy.Stats(); st.Steps >= alone.Stats().Steps {
		t.Errorf("batching did not reduce steps: %d batched vs %d alone", st.Steps, alone.Stats().Steps)
	}
	drain(t, busy)
}

// TestPrefixCachingComputesOnlyTheRemainder: a second request sharing a
// 3-block prefix computes only its remainder and gives the same output.
func TestPrefixCachingComputesOnlyTheRemainder(t *testing.T) {
	m := loadTiny(t)
	r := rand.New(rand.NewPCG(3, 4))
	prefix := randPrompt(r, 48, m.Config.VocabSize) // 3 blocks of 16
	first := Request{PromptIDs: append(append([]int32{}, prefix...), randPrompt(r, 5, 512)...), MaxTokens: 4, IgnoreEOS: true}
	second := Request{PromptIDs: append(append([]int32{}, prefix...), randPrompt(r, 7, 512)...), MaxTokens: 4, IgnoreEOS: true}

	e := newEngine(t, m, Config{})
	generate(t, e, first)
	before := e.Stats().ForwardTokens
	got := generate(t, e, second)[0]
	computed := e.Stats().ForwardTokens - before
	// 7 remainder tokens, then one token for each of the 3 decodes.
	if computed != 7+3 {
		t.Errorf("second request computed %d tokens, want %d", computed, 7+3)
	}
	if got.cached != 48 {
		t.Errorf("CachedPromptTokens %d, want 48", got.cached)
	}
	fresh := newEngine(t, m, Config{DisablePrefixCache: true})
	if want := generate(t, fresh, second)[0]; !sameTokens(got.tokens, want.tokens) {
		t.Errorf("with cached prefix %v, without %v", got.tokens, want.tokens)
	}
	if st := e.Stats(); st.PrefixHitBlocks != 3 || st.PrefixHitRatio <= 0 {
		t.Errorf("stats %+v", st)
	}
	drain(t, e)
}

// TestPreemptionKeepsOutputs: with a KV pool too small for all requests
// at once, every request still gives exactly its output alone (greedy, and
// seeded sampling with penalties).
func TestPreemptionKeepsOutputs(t *testing.T) {
	m := loadTiny(t)
	r := rand.New(rand.NewPCG(5, 6))
	reqs := make([]Request, 12)
	for i := range reqs {
		reqs[i] = Request{PromptIDs: randPrompt(r, 20+r.IntN(30), m.Config.VocabSize), MaxTokens: 24, IgnoreEOS: true}
		if i%2 == 1 {
			// Seeded sampling with penalties must survive recomputation too.
			p := &reqs[i].Params
			p.Temperature, p.TopP, p.RepetitionPenalty, p.Seed, p.HasSeed = 0.8, 0.9, 1.2, uint64(i), true
		}
	}
	alone := newEngine(t, m, Config{DisablePrefixCache: true})
	want := make([][]int32, len(reqs))
	for i, req := range reqs {
		want[i] = generate(t, alone, req)[0].tokens
	}
	// 16 blocks of 8 tokens: 128 slots for 12 sequences of up to 74 tokens.
	small := newEngine(t, m, Config{NumBlocks: 16, BlockSizeTokens: 8})
	got := make([][]int32, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = generate(t, small, req)[0].tokens
		}()
	}
	wg.Wait()
	for i := range reqs {
		if !sameTokens(got[i], want[i]) {
			t.Errorf("request %d: with preemption %v, alone %v", i, got[i], want[i])
		}
	}
	if st := small.Stats(); st.Preemptions == 0 {
		t.Errorf("no preemption happened: %+v", st)
	}
	drain(t, small)

	// The same pool with each request's full length reserved at
	// admission: the same outputs, and no preemption at all.
	reserving := newEngine(t, m, Config{NumBlocks: 16, BlockSizeTokens: 8, ReserveMaxLen: true})
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = generate(t, reserving, req)[0].tokens
		}()
	}
	wg.Wait()
	for i := range reqs {
		if !sameTokens(got[i], want[i]) {
			t.Errorf("request %d: reserving max length %v, alone %v", i, got[i], want[i])
		}
	}
	if st := reserving.Stats(); st.Preemptions != 0 {
		t.Errorf("%d preemptions with ReserveMaxLen, want 0", st.Preemptions)
	}
	drain(t, reserving)
}

// TestChunkedPrefillGivesSameLogits: a prompt longer than the token budget,
// prefilled in chunks, gives the same logits as in one pass.
func TestChunkedPrefillGivesSameLogits(t *testing.T) {
	m := loadTiny(t)
	r := rand.New(rand.NewPCG(7, 8))
	req := Request{PromptIDs: randPrompt(r, 150, m.Config.VocabSize), MaxTokens: 3, IgnoreEOS: true}
	run := func(budget int) [][]float32 {
		var rows [][]float32
		cfg := Config{MaxBatchTokens: budget}
		cfg.logitsHook = func(_ uint64, l []float32) { rows = append(rows, append([]float32(nil), l...)) }
		e := newEngine(t, m, cfg)
		generate(t, e, req)
		if st := e.Stats(); budget < 150 && st.Steps < int64(150/budget+2) {
			t.Errorf("budget %d: only %d steps, prompt was not chunked", budget, st.Steps)
		}
		drain(t, e)
		return rows
	}
	whole, chunked := run(512), run(32)
	if len(whole) != 3 || len(chunked) != 3 {
		t.Fatalf("sampled rows: %d whole, %d chunked", len(whole), len(chunked))
	}
	for i := range whole {
		for j := range whole[i] {
			if whole[i][j] != chunked[i][j] {
				t.Fatalf("row %d logit %d: chunked %g, whole %g", i, j, chunked[i][j], whole[i][j])
			}
		}
	}
}

// TestRandomCancellationsFreeEveryBlock: 100 requests cancelled at random
// moments mid-generation leave every block in the pool.
func TestRandomCancellationsFreeEveryBlock(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{NumBlocks: 64, BlockSizeTokens: 8, MaxBatchTokens: 128})
	r := rand.New(rand.NewPCG(9, 10))
	var wg sync.WaitGroup
	var mu sync.Mutex
	cancelled := 0
	for i := 0; i < 100; i++ {
		prompt := randPrompt(r, 1+r.IntN(40), m.Config.VocabSize)
		n := 1 + r.IntN(2)
		after := r.IntN(6)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := e.Submit(ctx, Request{PromptIDs: prompt, MaxTokens: 40, N: n, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			seen := 0
			for ev := range ch {
				if ev.HasToken {
					seen++
				}
				if seen >= after {
					cancel()
				}
				if ev.Done && ev.FinishReason == FinishCancelled {
					mu.Lock()
					cancelled++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if cancelled < 50 {
		t.Errorf("only %d completions reported cancellation", cancelled)
	}
	drain(t, e)
}

func TestShutdownDrainsAndRejects(t *testing.T) {
	m := loadTiny(t)
	e := newEngine(t, m, Config{})
	ch, err := e.Submit(context.Background(), Request{PromptIDs: []int32{5, 6, 7}, MaxTokens: 5, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c := collect(t, ch, 1)[0]; len(c.tokens) != 5 || c.reason != FinishLength {
		t.Errorf("request during shutdown: %+v", c)
	}
	if _, err := e.Submit(context.Background(), Request{PromptIDs: []int32{1}}); err != ErrShutdown {
		t.Errorf("submit after shutdown: %v, want ErrShutdown", err)
	}
}
