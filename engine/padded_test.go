package engine

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestPaddedDecodeMatchesEager runs concurrent greedy requests on the CPU
// with decode steps padded to their bucket (the CUDA-graph path, run
// eagerly) and requires each request's tokens to be those of the eager
// engine; and checks that the padded path was taken.
func TestPaddedDecodeMatchesEager(t *testing.T) {
	m := loadTiny(t)
	vocab := m.Config.VocabSize
	r := rand.New(rand.NewPCG(9, 4))
	reqs := make([]Request, 13)
	for i := range reqs {
		reqs[i] = Request{PromptIDs: randPrompt(r, 1+r.IntN(40), vocab), MaxTokens: 2 + r.IntN(10), IgnoreEOS: true}
	}
	run := func(cfg Config) ([][]int32, Stats) {
		e := newEngine(t, m, cfg)
		got := make([][]int32, len(reqs))
		var wg sync.WaitGroup
		for i, req := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = generate(t, e, req)[0].tokens
			}()
		}
		wg.Wait()
		return got, e.Stats()
	}
	want, eager := run(Config{})
	if eager.PaddedDecodeSteps != 0 {
		t.Fatalf("eager engine ran %d padded steps", eager.PaddedDecodeSteps)
	}
	var warm int
	got, padded := run(Config{padDecode: true, MaxSeqs: 6, MaxBatchTokens: 64, DecodeBuckets: []int{1, 2, 4, 8}, OnWarmup: func(n int, _ time.Duration) { warm++ }})
	if warm != 1 {
		t.Errorf("OnWarmup called %d times, want 1", warm)
	}
	if padded.PaddedDecodeSteps == 0 {
		t.Fatalf("no step took the padded path (%d steps)", padded.Steps)
	}
	for i := range reqs {
		if !sameTokens(got[i], want[i]) {
			t.Errorf("request %d: padded %v, eager %v", i, got[i], want[i])
		}
	}
	t.Logf("%d of %d steps padded", padded.PaddedDecodeSteps, padded.Steps)
}

// TestCloseFreesKVCache: after Close the engine's cache is freed (the CPU
// backend refuses it), and a second Close is harmless.
func TestCloseFreesKVCache(t *testing.T) {
	m := loadTiny(t)
	for _, padded := range []bool{false, true} {
		e, err := New(m, Config{NumBlocks: 8, padDecode: padded, MaxSeqs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if padded && e.dec == nil {
			t.Fatal("padDecode made no decoder")
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		b := e.bat.b
		b.Tokens, b.Positions, b.Slots = []int32{1}, []int32{0}, []int32{0}
		b.QueryStart, b.ContextLen, b.BlockTables, b.LogitRows = []int32{0, 1}, []int32{1}, [][]int32{{0}}, []int32{0}
		if _, err := m.Forward(&b, e.cache); err == nil {
			t.Errorf("padded=%v: Forward on the closed engine's cache succeeded", padded)
		}
	}
}
