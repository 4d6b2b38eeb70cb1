package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// DefaultBuckets returns the ladder of decode batch sizes that get their
// own persistent buffers and graph: 1, 2, 4, then every 8 to 64, every 16
// to 256 and every 32 to 512 (as vLLM's capture sizes, coarser): a step
// is padded to the next bucket and pays for the padding rows in its
// GEMMs, so the ladder is fine where batches run compute-bound. Buckets
// share the top bucket's buffers; a larger batch runs op by op.
func DefaultBuckets() []int {
	b := []int{1, 2, 4}
	for n := 8; n <= 64; n += 8 {
		b = append(b, n)
	}
	for n := 80; n <= 256; n += 16 {
		b = append(b, n)
	}
	for n := 288; n <= 512; n += 32 {
		b = append(b, n)
	}
	return b
}

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// Buckets are the batch sizes a decode step is padded to, ascending
	// (DefaultBuckets when empty).
	Buckets []int
	// MaxSeqs, if > 0, caps the ladder: buckets from MaxSeqs up are
	// replaced by MaxSeqs itself, the largest decode batch there can be.
	// (Decode batches above the top bucket run eagerly.)
	MaxSeqs int
	// PadBlock is a cache block that no sequence uses: padding rows write
	// their K and V into its first slot and attend only to it.
	PadBlock int32
	// StageTokens, StageSeqs and StageBlocksPerSeq, when set, are the
	// largest step (eager steps included) the backend's per-step buffers
	// are grown to at Warmup, so that they do not move later: on CUDA a
	// move invalidates every captured graph, which is then captured again
	// on its next use.
	StageTokens, StageSeqs, StageBlocksPerSeq int
	// Eager runs the padded pass op by op even on a backend that records
	// graphs (tests and benchmarks compare the two).
	Eager bool
}

// Decoder runs decode-only steps (one new token for each of n distinct
// sequences, logits for every row) through persistent activation buffers
// sized for a ladder of batch sizes: a step is padded to the smallest
// bucket that holds it, and on a backend that implements
// backend.GraphRunner each bucket's forward pass is one recorded graph,
// replayed step after step. On other backends the same padded pass runs
// eagerly (the CPU uses this to test it).
//
// A Decoder is used by one goroutine, like its backend. The logits it
// returns are a view of its persistent buffer: valid until its next Forward
// or Warmup, and freeing them with the backend (as after Model.Forward)
// does nothing.
type Decoder struct {
	m       *Model
	cache   backend.KVCache
	cfg     DecoderConfig
	buckets []int
	viewer  backend.Viewer
	graphs  backend.GraphRunner
	full    []backend.Tensor // the top bucket's buffers, freed by Close
	acts    map[int]*acts    // per bucket: views of full
	pad     backend.Batch
	padTbl  []int32
	closed  bool
}

// NewDecoder prepares padded decode steps on cache. It allocates the
// activations of the largest bucket (the smaller ones are views of them);
// it fails if the backend cannot make views (backend.Viewer) or the pad
// block is outside the cache.
func (m *Model) NewDecoder(cache backend.KVCache, cfg DecoderConfig) (*Decoder, error) {
	viewer, ok := m.b.(backend.Viewer)
	if !ok {
		return nil, fmt.Errorf("decoder: backend %s cannot make tensor views", m.b.Name())
	}
	spec := cache.Spec()
	if cfg.PadBlock < 0 || int(cfg.PadBlock) >= spec.NumBlocks {
		return nil, fmt.Errorf("decoder: pad block %d outside the cache's %d blocks", cfg.PadBlock, spec.NumBlocks)
	}
	buckets := cfg.Buckets
	if len(buckets) == 0 {
		buckets = DefaultBuckets()
	}
	for i, b := range buckets {
		if b < 1 || i > 0 && b <= buckets[i-1] {
			return nil, fmt.Errorf("decoder: buckets %v are not ascending positive sizes", buckets)
		}
	}
	if top := buckets[len(buckets)-1]; cfg.MaxSeqs > 0 && cfg.MaxSeqs < top {
		var capped []int
		for _, b := range buckets {
			if b < cfg.MaxSeqs {
				capped = append(capped, b)
			}
		}
		buckets = append(capped, cfg.MaxSeqs)
	}
	d := &Decoder{m: m, cache: cache, cfg: cfg, buckets: buckets, viewer: viewer, acts: map[int]*acts{}}
	if !cfg.Eager {
		d.graphs, _ = m.b.(backend.GraphRunner)
	}
	d.padTbl = []int32{cfg.PadBlock}
	if err := d.alloc(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Buckets returns the ladder of batch sizes, ascending.
func (d *Decoder) Buckets() []int { return slices.Clone(d.buckets) }

// alloc makes the top bucket's buffers and every bucket's views of them.
func (d *Decoder) alloc() error {
	c, b := d.m.Config, d.m.b
	top := d.buckets[len(d.buckets)-1]
	act := b.ActivationDType()
	hd, hq := c.HeadDim, c.NumAttentionHeads
	widths := []int{c.HiddenSize, c.HiddenSize, c.QKVRows(), hq * hd, hq * hd, c.HiddenSize, 2 * c.IntermediateSize, c.IntermediateSize, c.VocabSize}
	for i, w := range widths {
		dt := act
		if i == len(widths)-1 {
			dt = backend.F32 // logits
		}
		t, err := b.Alloc(dt, top, w)
		if err != nil {
			return fmt.Errorf("decoder: alloc %s[%d,%d]: %w", dt, top, w, err)
		}
		d.full = append(d.full, t)
	}
	for _, n := range d.buckets {
		v := make([]backend.Tensor, len(widths))
		for i, w := range widths {
			var err error
			if v[i], err = d.viewer.View(d.full[i], n, w); err != nil {
				return fmt.Errorf("decoder: view of bucket %d: %w", n, err)
			}
		}
		d.acts[n] = &acts{resid: v[0], x: v[1], qkv: v[2], q: v[3], attn: v[4], proj: v[5], gu: v[6], mid: v[7], logits: v[8],
			fused: n <= d.m.fuseRows}
	}
	return nil
}

// Close frees the persistent buffers and drops the backend's recorded
// graphs (which use them). It is safe to call more than once.
func (d *Decoder) Close() {
	if d.closed {
		return
	}
	d.closed = true
	if d.graphs != nil {
		d.graphs.DropGraphs()
	}
	for _, t := range d.full {
		d.m.b.Free(t)
	}
	d.full, d.acts = nil, nil
}

// bucket returns the smallest bucket holding n rows, or 0 if none does.
func (d *Decoder) bucket(n int) int {
	for _, b := range d.buckets {
		if b >= n {
			return b
		}
	}
	return 0
}

// Fits reports whether Forward takes the batch: a decode-only step (every
// sequence has one new token, logits for every row in order) of at most
// the top bucket's size.
func (d *Decoder) Fits(batch *backend.Batch) bool {
	n := len(batch.Tokens)
	if n == 0 || batch.NumSeqs() != n || len(batch.LogitRows) != n || d.bucket(n) == 0 {
		return false
	}
	for i, r := range batch.LogitRows {
		if int(r) != i {
			return false
		}
	}
	return true
}

// ErrNotDecode is returned by Decoder.Forward for a batch it does not take
// (see Fits); run it with Model.Forward.
var ErrNotDecode = errors.New("decoder: not a decode-only step within the bucket ladder")

// Forward runs a decode-only step padded to its bucket and returns float32
// logits [n, vocab] for its n rows: a view of the bucket's persistent
// buffer, valid until the next Forward or Warmup (see Decoder).
func (d *Decoder) Forward(batch *backend.Batch) (backend.Tensor, error) {
	if d.closed {
		return nil, errors.New("decoder: closed")
	}
	if !d.Fits(batch) {
		return nil, ErrNotDecode
	}
	if err := d.m.check(batch, d.cache); err != nil {
		return nil, err
	}
	n := len(batch.Tokens)
	bucket := d.bucket(n)
	d.padTo(batch, bucket)
	if err := d.runBucket(bucket); err != nil {
		return nil, err
	}
	return d.viewer.View(d.full[len(d.full)-1], n, d.m.Config.VocabSize)
}

// padTo lays out batch (nil: no real rows) padded to bucket rows in d.pad.
// A padding row is token 0 at position 0 of a one-token sequence whose
// only block is the pad block: it writes K and V to the pad block's first
// slot (every padding row the same one) and attends to it alone, so it
// reads and writes nothing of any real sequence; its logits are dropped.
func (d *Decoder) padTo(batch *backend.Batch, bucket int) {
	p := &d.pad
	p.Tokens, p.Positions, p.Slots = p.Tokens[:0], p.Positions[:0], p.Slots[:0]
	p.QueryStart, p.ContextLen = append(p.QueryStart[:0], 0), p.ContextLen[:0]
	p.BlockTables, p.LogitRows = p.BlockTables[:0], p.LogitRows[:0]
	if batch != nil {
		p.Tokens = append(p.Tokens, batch.Tokens...)
		p.Positions = append(p.Positions, batch.Positions...)
		p.Slots = append(p.Slots, batch.Slots...)
		p.ContextLen = append(p.ContextLen, batch.ContextLen...)
		p.BlockTables = append(p.BlockTables, batch.BlockTables...)
	}
	padSlot := d.cfg.PadBlock * int32(d.cache.Spec().BlockSize)
	for len(p.Tokens) < bucket {
		p.Tokens = append(p.Tokens, 0)
		p.Positions = append(p.Positions, 0)
		p.Slots = append(p.Slots, padSlot)
		p.ContextLen = append(p.ContextLen, 1)
		p.BlockTables = append(p.BlockTables, d.padTbl)
	}
	for i := range bucket {
		p.QueryStart = append(p.QueryStart, int32(i+1))
		p.LogitRows = append(p.LogitRows, int32(i))
	}
}

// runBucket stages d.pad and runs the bucket's forward pass: replayed from
// its graph where the backend records graphs, else directly.
func (d *Decoder) runBucket(bucket int) error {
	st, err := d.m.b.Stage(&d.pad)
	if err != nil {
		return fmt.Errorf("decoder: stage: %w", err)
	}
	a := d.acts[bucket]
	fn := func() error { return d.m.run(a, d.cache, st) }
	if d.graphs == nil {
		return fn()
	}
	return d.graphs.RunGraph(fmt.Sprintf("model/decode/b%d", bucket), fn)
}

// Warmup grows the backend's step buffers to the configured largest step,
// then runs every bucket once on padding rows alone, largest first; on a
// graph backend this records each bucket's graph. (The first, eager pass
// also lets the backend size its scratch for any step up to the reserved
// one: on CUDA the attention workspace, whose growth would drop the
// graphs.) It returns how many
// buckets went through the backend's graph recorder (0 on a backend
// without graphs). It writes only the pad block of the cache.
func (d *Decoder) Warmup() (graphs int, err error) {
	if d.closed {
		return 0, errors.New("decoder: closed")
	}
	if err := d.reserveStage(); err != nil {
		return 0, err
	}
	if t, ok := d.m.b.(backend.GEMMTuner); ok {
		// every decode step reuses these shapes: worth timing their GEMMs
		if err := t.SetGEMMTuning(true); err != nil {
			return 0, err
		}
		defer func() {
			if e := t.SetGEMMTuning(false); e != nil && err == nil {
				err = e
			}
		}()
	}
	for i := len(d.buckets) - 1; i >= 0; i-- {
		bucket := d.buckets[i]
		d.padTo(nil, bucket)
		if err := d.runBucket(bucket); err != nil {
			return graphs, fmt.Errorf("decoder: warm-up of bucket %d: %w", bucket, err)
		}
		if d.graphs != nil {
			graphs++
		}
	}
	return graphs, d.m.b.Sync()
}

// reserveStage stages (and does not run) a batch of the largest
// configured shape, so that the backend's step buffers reach their final
// size before any graph records their addresses.
func (d *Decoder) reserveStage() error {
	top := d.buckets[len(d.buckets)-1]
	seqs := max(d.cfg.StageSeqs, top)
	tokens := max(d.cfg.StageTokens, seqs)
	blocks := max(d.cfg.StageBlocksPerSeq, 1)
	if d.cfg.StageTokens == 0 && d.cfg.StageSeqs == 0 && d.cfg.StageBlocksPerSeq == 0 {
		return nil
	}
	tbl := make([]int32, blocks)
	for i := range tbl {
		tbl[i] = d.cfg.PadBlock
	}
	b := &backend.Batch{
		Tokens:      make([]int32, tokens),
		Positions:   make([]int32, tokens),
		Slots:       make([]int32, tokens),
		QueryStart:  make([]int32, seqs+1),
		ContextLen:  make([]int32, seqs),
		BlockTables: make([][]int32, seqs),
		LogitRows:   []int32{0},
	}
	for i := range seqs {
		b.QueryStart[i+1] = int32(i + 1)
		b.ContextLen[i] = 1
		b.BlockTables[i] = tbl
	}
	b.QueryStart[seqs] = int32(tokens)
	b.ContextLen[seqs-1] = int32(tokens - seqs + 1)
	if _, err := d.m.b.Stage(b); err != nil {
		return fmt.Errorf("decoder: reserve step buffers: %w", err)
	}
	return nil
}
