// Package engine serves many generation requests at once on one model: it
// owns the KV cache, the block manager (engine/kvcache) and the scheduler
// (engine/sched), and runs the step loop in its own goroutine. Each step
// runs one batched forward pass (prefill chunks and decodes together),
// samples the sequences that reached their end, and streams the tokens to
// their requests.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/kvcache"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/sched"
)

// Sentinel errors of Submit; callers branch on them with errors.Is.
var (
	// ErrQueueFull: too many requests are waiting (HTTP 429).
	ErrQueueFull = errors.New("engine: queue full")
	// ErrContextTooLong: prompt plus max tokens exceed the context (HTTP 400).
	ErrContextTooLong = errors.New("engine: context too long")
	// ErrShutdown: the engine is shutting down or closed (HTTP 503).
	ErrShutdown = errors.New("engine: shut down")
	// ErrInvalidRequest: the request itself is malformed (HTTP 400).
	ErrInvalidRequest = errors.New("engine: invalid request")
)

// Runner is the model as the engine uses it; *model.Model implements it.
type Runner interface {
	// KVSpec sizes a paged KV cache of numBlocks blocks for this model.
	KVSpec(numBlocks, blockSizeTokens int) backend.KVCacheSpec
	// Backend is the backend the model runs on.
	Backend() backend.Backend
	// Forward runs one step and returns float32 logits
	// [len(batch.LogitRows), vocab], owned by the caller.
	Forward(batch *backend.Batch, cache backend.KVCache) (backend.Tensor, error)
}

// DecodeRunner is a Runner that can also run decode-only steps padded to
// a ladder of batch sizes through persistent buffers, each bucket's pass
// recorded once as a CUDA graph where the backend records graphs;
// *model.Model implements it.
type DecodeRunner interface {
	Runner
	NewDecoder(cache backend.KVCache, cfg model.DecoderConfig) (*model.Decoder, error)
}

// StreamDecoder turns one sequence's token ids into text incrementally.
type StreamDecoder interface {
	// Add takes the next token and returns the text it completes (empty
	// while a multi-byte character is incomplete).
	Add(id int32) string
}

// Detokenizer makes a StreamDecoder per sequence.
type Detokenizer interface {
	NewStreamDecoder() StreamDecoder
}

// StepInfo describes one engine step, for Config.OnStep.
type StepInfo struct {
	// NumSeqs and NumTokens are the sequences and tokens of the forward.
	NumSeqs, NumTokens int
	// Forward is the time in Runner.Forward; Sample the time to sample
	// the logits (download and host sampling, or device sampling); Total
	// is the whole step, so Total-Forward-Sample is the engine's own Go
	// work (scheduling, batch building, streaming).
	Forward, Sample, Total time.Duration
}

// Config configures an Engine. Zero fields take the defaults noted.
type Config struct {
	// BlockSizeTokens is the number of tokens per KV block (16).
	BlockSizeTokens int
	// NumBlocks is the number of KV blocks; if 0, KVMemoryBytes decides.
	NumBlocks int
	// KVMemoryBytes is the KV cache budget used when NumBlocks is 0.
	KVMemoryBytes int64
	// MaxBatchTokens caps the tokens of one forward step (2048).
	MaxBatchTokens int
	// MaxSeqs caps the running sequences (256).
	MaxSeqs int
	// ReserveMaxLen admits a request only when the KV blocks for its
	// prompt plus max tokens fit beside what the running requests may
	// still need (each until it reaches its own max), so nothing is ever
	// preempted (sched.Config's
	// ReserveMaxLen: TensorRT-LLM's "guaranteed no evict"); off, requests
	// are admitted on their first chunk and preempted when blocks run out.
	ReserveMaxLen bool
	// Stagger (with ReserveMaxLen) paces admissions so that requests of
	// one length start and end at spread steps instead of in waves
	// (sched.Config's Stagger).
	Stagger bool
	// MaxQueue caps the sequences waiting to run; Submit returns
	// ErrQueueFull beyond it (0: no cap).
	MaxQueue int
	// MaxContextTokens is the model's context length, prompt plus output
	// (default and upper bound: what the KV pool holds).
	MaxContextTokens int
	// VocabSize, if set, makes Submit reject prompt ids outside [0, VocabSize).
	VocabSize int
	// EOSTokenIDs end a sequence unless the request sets IgnoreEOS.
	EOSTokenIDs []int32
	// Detokenizer, if set, fills Event.Text and enables stop strings.
	Detokenizer Detokenizer
	// ModelIdentity names the model and adapter for the prefix cache.
	ModelIdentity string
	// DisablePrefixCache turns prefix caching off.
	DisablePrefixCache bool
	// OnStep, if set, is called by the loop goroutine after every step.
	OnStep func(StepInfo)
	// EnforceEager turns CUDA graphs off: every step runs op by op.
	// Otherwise, on a backend that records graphs (backend.GraphRunner)
	// and a DecodeRunner, decode-only steps of up to the top bucket are
	// padded to their bucket and replay that bucket's graph, captured by
	// New; prefill and mixed steps always run eagerly. One KV block more
	// than NumBlocks is allocated for the padding rows.
	EnforceEager bool
	// DecodeBuckets are the decode batch sizes that get a graph
	// (model.DefaultBuckets when empty), capped at MaxSeqs.
	DecodeBuckets []int
	// OnWarmup, if set, is called by New once the decode graphs are
	// captured, with their number and the time it took.
	OnWarmup func(graphs int, took time.Duration)

	// padDecode, for tests, pads decode steps to their bucket on a backend
	// without graphs too.
	padDecode bool

	// logitsHook, for tests, sees every sampled row's logits.
	logitsHook func(seqID uint64, logits []float32)
}

// Stats is a snapshot of the engine's state and counters.
type Stats struct {
	// Running and Waiting count sequences.
	Running, Waiting int
	// KVBlocksUsed of KVBlocksTotal are referenced by sequences.
	KVBlocksUsed, KVBlocksTotal int
	// KVUsage is KVBlocksUsed/KVBlocksTotal.
	KVUsage float64
	// PrefixHitRatio is CachedPromptTokens/PromptTokens.
	PrefixHitRatio float64
	// PromptTokens and CachedPromptTokens count admitted prompts' tokens
	// and those found in the prefix cache.
	PromptTokens, CachedPromptTokens int64
	// GeneratedTokens counts sampled tokens.
	GeneratedTokens int64
	// ForwardTokens counts tokens computed by the model (prefill and decode,
	// recomputation included).
	ForwardTokens int64
	// Steps counts forward steps.
	Steps int64
	// PaddedDecodeSteps counts the steps that ran bucket-padded (as CUDA
	// graphs on a GPU) rather than eagerly.
	PaddedDecodeSteps int64
	// Preemptions counts sequences preempted for lack of blocks or for
	// interactive work.
	Preemptions int64
	// Requests counts accepted requests.
	Requests int64
	// PrefixHitBlocks, PrefixMissBlocks and Evictions are the block
	// manager's counters.
	PrefixHitBlocks, PrefixMissBlocks, Evictions int64
}

// Engine runs requests on one model. Its methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	r       Runner
	b       backend.Backend
	cache   backend.KVCache
	dec     *model.Decoder // nil: every step eager
	kv      *kvcache.Manager
	sched   *sched.Scheduler
	maxCtx  int
	eos     map[int32]bool
	vocabOK func(int32) bool

	mu       sync.Mutex
	inbox    []*request
	closing  bool
	abort    bool
	waiting  int // scheduler's waiting count after the last step
	stats    Stats
	wake     chan struct{}
	loopDone chan struct{}
	freeOnce sync.Once

	// Loop-owned state.
	seqs   map[uint64]*seqState
	reqs   map[*request]bool
	nextID uint64
	bat    batchBuf
}

// New makes an engine over a runner, allocates the KV cache and starts
// the step loop.
func New(r Runner, cfg Config) (*Engine, error) {
	if r == nil || r.Backend() == nil {
		return nil, errors.New("engine: nil runner or backend")
	}
	if cfg.BlockSizeTokens == 0 {
		cfg.BlockSizeTokens = 16
	}
	if cfg.MaxBatchTokens == 0 {
		cfg.MaxBatchTokens = 2048
	}
	if cfg.MaxSeqs == 0 {
		cfg.MaxSeqs = 256
	}
	if cfg.BlockSizeTokens < 0 || cfg.MaxBatchTokens < 0 || cfg.MaxSeqs < 0 || cfg.NumBlocks < 0 || cfg.MaxQueue < 0 {
		return nil, fmt.Errorf("engine: negative limit in config %+v", cfg)
	}
	b := r.Backend()
	dr, _ := r.(DecodeRunner)
	_, records := b.(backend.GraphRunner)
	padded := dr != nil && !cfg.EnforceEager && (records || cfg.padDecode)
	if cfg.NumBlocks == 0 {
		perBlock := r.KVSpec(1, cfg.BlockSizeTokens).Bytes()
		if cfg.KVMemoryBytes <= 0 || perBlock <= 0 {
			return nil, errors.New("engine: set NumBlocks or KVMemoryBytes")
		}
		cfg.NumBlocks = int(cfg.KVMemoryBytes / perBlock)
		if padded && cfg.NumBlocks > 1 {
			cfg.NumBlocks-- // the padding rows' block stays within the budget
		}
		if cfg.NumBlocks == 0 {
			return nil, fmt.Errorf("engine: KV budget of %d bytes holds no block of %d bytes", cfg.KVMemoryBytes, perBlock)
		}
	}
	poolTokens := cfg.NumBlocks * cfg.BlockSizeTokens
	maxCtx := cfg.MaxContextTokens
	if maxCtx <= 0 || maxCtx > poolTokens {
		maxCtx = poolTokens
	}
	kv, err := kvcache.New(kvcache.Config{NumBlocks: cfg.NumBlocks, BlockSizeTokens: cfg.BlockSizeTokens, Identity: cfg.ModelIdentity, DisablePrefixCache: cfg.DisablePrefixCache})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	sc, err := sched.New(sched.Config{MaxBatchTokens: cfg.MaxBatchTokens, MaxSeqs: cfg.MaxSeqs, ReserveMaxLen: cfg.ReserveMaxLen, Stagger: cfg.Stagger}, kv)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	cacheBlocks := cfg.NumBlocks
	if padded {
		cacheBlocks++ // block NumBlocks: never handed out by kv, written by padding rows
	}
	cache, err := b.NewKVCache(r.KVSpec(cacheBlocks, cfg.BlockSizeTokens))
	if err != nil {
		return nil, fmt.Errorf("engine: allocate KV cache of %d blocks: %w", cacheBlocks, err)
	}
	e := &Engine{
		cfg: cfg, r: r, b: b, cache: cache, kv: kv, sched: sc, maxCtx: maxCtx,
		eos:      make(map[int32]bool),
		wake:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
		seqs:     make(map[uint64]*seqState),
		reqs:     make(map[*request]bool),
	}
	if padded {
		if err := e.startDecoder(dr); err != nil {
			e.free()
			return nil, err
		}
	}
	for _, id := range cfg.EOSTokenIDs {
		e.eos[id] = true
	}
	e.stats.KVBlocksTotal = cfg.NumBlocks
	go e.loop()
	return e, nil
}

// startDecoder makes the padded decode path and captures its graphs (on
// the caller's goroutine: the loop has not started).
func (e *Engine) startDecoder(dr DecodeRunner) error {
	cfg := &e.cfg
	blocksPerSeq := (min(e.maxCtx, stageContextTokens) + cfg.BlockSizeTokens - 1) / cfg.BlockSizeTokens
	dec, err := dr.NewDecoder(e.cache, model.DecoderConfig{
		Buckets:           cfg.DecodeBuckets,
		MaxSeqs:           cfg.MaxSeqs,
		PadBlock:          int32(cfg.NumBlocks),
		StageTokens:       max(cfg.MaxBatchTokens, cfg.MaxSeqs),
		StageSeqs:         cfg.MaxSeqs,
		StageBlocksPerSeq: blocksPerSeq,
	})
	if err != nil {
		return fmt.Errorf("engine: decode graphs: %w", err)
	}
	e.dec = dec
	t0 := time.Now()
	n, err := dec.Warmup()
	if err != nil {
		return fmt.Errorf("engine: decode graphs: %w", err)
	}
	if cfg.OnWarmup != nil {
		cfg.OnWarmup(n, time.Since(t0))
	}
	return nil
}

// stageContextTokens is the context up to which the backend's per-step
// block tables are sized at start; a longer sequence grows them, and on
// CUDA the graphs are captured again (the tables' size sets the bytes
// copied every step, so they are not sized for the longest context).
const stageContextTokens = 8192

// free releases the decoder's buffers and the KV cache, once; the loop
// must not be running.
func (e *Engine) free() {
	e.freeOnce.Do(func() {
		if e.dec != nil {
			e.dec.Close()
		}
		e.b.FreeKVCache(e.cache)
	})
}

// MaxContextTokens is the longest sequence (prompt plus output) accepted.
func (e *Engine) MaxContextTokens() int { return e.maxCtx }

// Submit validates and queues a request and returns its stream of events:
// token events, then one Done event per completion; the channel is closed
// after the last. Submit never blocks on the engine. The caller must read
// the channel to its end or cancel ctx: cancelling stops the request, frees
// its blocks at the next step, and closes the channel (events not yet read
// by then may be dropped).
func (e *Engine) Submit(ctx context.Context, req Request) (<-chan Event, error) {
	if err := e.validate(&req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := newRequest(ctx, req)
	r.stopWatch = context.AfterFunc(ctx, e.poke)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		r.stopWatch()
		return nil, ErrShutdown
	}
	if queued := e.waiting + len(e.inbox); e.cfg.MaxQueue > 0 && queued >= e.cfg.MaxQueue {
		e.mu.Unlock()
		r.stopWatch()
		return nil, fmt.Errorf("%w: %d sequences waiting", ErrQueueFull, queued)
	}
	e.inbox = append(e.inbox, r)
	e.stats.Requests++
	e.mu.Unlock()
	go r.out.run(ctx)
	e.poke()
	return r.out.ch, nil
}

func (e *Engine) validate(req *Request) error {
	if len(req.PromptIDs) == 0 {
		return fmt.Errorf("%w: empty prompt", ErrInvalidRequest)
	}
	if req.MaxTokens < 0 {
		return fmt.Errorf("%w: max_tokens %d is negative", ErrInvalidRequest, req.MaxTokens)
	}
	if req.N < 0 || req.N > 128 {
		return fmt.Errorf("%w: n = %d, want 1..128", ErrInvalidRequest, req.N)
	}
	if req.Priority != Interactive && req.Priority != BatchPriority {
		return fmt.Errorf("%w: unknown priority %d", ErrInvalidRequest, req.Priority)
	}
	if err := req.Params.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if len(req.StopStrings) > 0 && e.cfg.Detokenizer == nil {
		return fmt.Errorf("%w: stop strings need a tokenizer", ErrInvalidRequest)
	}
	if e.cfg.VocabSize > 0 {
		for i, id := range req.PromptIDs {
			if id < 0 || int(id) >= e.cfg.VocabSize {
				return fmt.Errorf("%w: prompt token %d is id %d, outside the vocabulary of %d", ErrInvalidRequest, i, id, e.cfg.VocabSize)
			}
		}
	}
	p := len(req.PromptIDs)
	if req.MaxTokens == 0 {
		if p >= e.maxCtx {
			return fmt.Errorf("%w: prompt of %d tokens leaves no room in the context of %d tokens", ErrContextTooLong, p, e.maxCtx)
		}
		req.MaxTokens = e.maxCtx - p
	}
	if req.MaxTokens > e.maxCtx-p { // not p+MaxTokens: that can overflow
		return fmt.Errorf("%w: prompt %d + max_tokens %d = %d tokens, over the context of %d tokens", ErrContextTooLong, p, req.MaxTokens, p+req.MaxTokens, e.maxCtx)
	}
	return nil
}

// poke wakes the loop.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the engine's state and counters, as of the
// end of the last step.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Shutdown stops accepting requests and waits until every accepted
// request has finished, or until ctx is done; then it cancels what is
// left (Done events with FinishCancelled and ErrShutdown), stops the loop
// and frees the KV cache. It returns ctx's error if it had to cancel.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.poke()
	var err error
	select {
	case <-e.loopDone:
	case <-ctx.Done():
		err = ctx.Err()
		e.mu.Lock()
		e.abort = true
		e.mu.Unlock()
		e.poke()
		<-e.loopDone
	}
	e.free()
	return err
}

// Close cancels every request and stops the engine at once.
func (e *Engine) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
