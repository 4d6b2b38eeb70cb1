//go:build cuda

package cuda

/*
#include "tokamak.h"
*/
import "C"

import (
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/sample"
)

// sampler holds SampleBatch's device buffer (parameters, results and
// penalty histories of one batch), grown as batches need, and the host
// staging slices reused from step to step.
type sampler struct {
	dev     unsafe.Pointer
	bytes   int64
	params  []C.tk_sample_params
	results []C.tk_sample_result
	ids     []int32
	counts  []int32
	table   bool  // the weight exponential's and the race's tables are on the device
	flags   C.int // tk_sample's flags for the batch in params
}

// sampleTopKLists turns on the fused sampler's top-k lists
// (TK_SAMPLE_TOPK_LISTS: rows with top-k <= 64 and no logprobs take their
// top k from the max pass instead of the cut passes; top-k 50 + top-p 0.9
// at 256 rows 357 -> 104 us on an H100, docs/gpu.md). On unless
// TOKAMAK_SAMPLE_TOPK_LISTS=0 (the cut passes, for comparisons).
var sampleTopKLists = os.Getenv("TOKAMAK_SAMPLE_TOPK_LISTS") != "0"

// sampleTopPFast turns on the fused sampler's one-read top-p
// (TK_SAMPLE_TOPP_FAST: rows with top-p >= 0.8, no top-k, no min-p and
// no logprobs draw from the max pass's best race keys where one block
// samples a row, instead of the cut passes; see docs/gpu.md). On unless
// TOKAMAK_SAMPLE_TOPP_FAST=0; TOKAMAK_SAMPLE_TOPP_FAST=all takes every
// top-p row whatever its top-p (sampleTopPFastAll; tests, where small
// top-p exercises the fallback to the cut passes).
var (
	sampleTopPFast    = os.Getenv("TOKAMAK_SAMPLE_TOPP_FAST") != "0"
	sampleTopPFastAll = os.Getenv("TOKAMAK_SAMPLE_TOPP_FAST") == "all"
	// sampleTopPFallback (tests only) sends every row of the one-read
	// top-p to the cut passes after its read (TK_SAMPLE_TOPP_FAST_FALLBACK).
	sampleTopPFallback = false
)

// sampleBlockTimes has every sampling kernel record its blocks' SMs and
// times (TK_SAMPLE_BLOCK_TIMES) for sampleBlockSummary; on with
// TOKAMAK_SAMPLE_PHASES (benchmarks).
var sampleBlockTimes = os.Getenv("TOKAMAK_SAMPLE_PHASES") != ""

func (s *sampler) free() {
	if s.dev != nil {
		C.tk_free(s.dev)
		s.dev, s.bytes = nil, 0
	}
}

func align256(n int64) int64 { return (n + 255) &^ 255 }

// SampleBatch implements sample.DeviceSampler with the fused sampling
// kernel (kernels/sample.cu): every row is sampled on the device with the
// semantics of sample.Sample, and only the parameters, the penalty
// histories and the results cross the bus. Penalties are applied to
// logits in place, so the tensor must not be sampled twice.
func (b *Backend) SampleBatch(logits backend.Tensor, rows []sample.Row) ([]sample.Result, error) {
	t, err := asTensor(logits, "sample")
	if err != nil {
		return nil, err
	}
	if t.dt != backend.F32 || len(t.shape) != 2 || t.shape[0] != len(rows) || t.shape[1] <= 0 {
		return nil, fmt.Errorf("cuda: sample: logits %s%v for %d rows, want f32 [%d, vocab]", t.dt, t.shape, len(rows), len(rows))
	}
	if len(rows) == 0 {
		return nil, nil
	}
	vocab := t.shape[1]
	s := &b.smp
	s.params = s.params[:0]
	s.flags = 0
	s.ids, s.counts = s.ids[:0], s.counts[:0]
	if !s.table {
		tab := sample.ExpTable()
		if rc := C.tk_sample_set_exp_table((*C.uint32_t)(unsafe.Pointer(&tab[0])), C.int(len(tab))); rc != 0 {
			return nil, callError("cudaMemcpyToSymbol(sample exp table)", rc)
		}
		lt := sample.LogTable()
		if rc := C.tk_sample_set_log_table((*C.float)(unsafe.Pointer(&lt[0])), C.int(len(lt))); rc != 0 {
			return nil, callError("cudaMemcpyToSymbol(sample log table)", rc)
		}
		s.table = true
	}
	for i, r := range rows {
		p := r.Params
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("row %d: sample: %w", i, err)
		}
		var cp C.tk_sample_params
		cp.repetition = 1
		if p.Greedy() {
			cp.greedy = 1
		} else {
			cp.w_scale = C.float(sample.WeightScale(p.Temperature))
			cp.noise_key = C.ulonglong(sample.NoiseKey(p.Seed, r.Draw))
			if p.TopK > 0 && p.TopK < vocab {
				cp.top_k = C.int(p.TopK)
				if sampleTopKLists && p.TopK <= C.TK_SAMPLE_TOPK_LISTS_MAX && !p.WantLogprobs() {
					s.flags |= C.TK_SAMPLE_TOPK_LISTS
				}
			}
			if p.TopP > 0 && p.TopP < 1 {
				cp.top_p = C.float(p.TopP)
				// (the one-read top-p's race queue packs an id above four
				// bits of an int: ids below 2^27)
				if sampleTopPFast && cp.top_k == 0 && p.MinP == 0 && !p.WantLogprobs() && vocab < 1<<27 &&
					(sampleTopPFastAll || p.TopP >= C.TK_SAMPLE_TOPP_FAST_MIN) {
					s.flags |= C.TK_SAMPLE_TOPP_FAST
				}
			}
			cp.min_p = C.float(p.MinP)
		}
		if p.WantLogprobs() {
			cp.want_logprobs = 1
			if n := min(p.TopLogprobs, vocab, C.TK_SAMPLE_MAX_TOP); n > 0 {
				cp.n_top = C.int(n)
			}
		}
		if r.History != nil && p.Penalised() {
			if p.RepetitionPenalty != 0 {
				cp.repetition = C.float(p.RepetitionPenalty)
			}
			cp.presence = C.float(p.PresencePenalty)
			cp.frequency = C.float(p.FrequencyPenalty)
			ids, counts := r.History.Tokens()
			for _, id := range ids {
				if id < 0 || int(id) >= vocab {
					return nil, fmt.Errorf("row %d: sample: history token %d outside the vocabulary of %d", i, id, vocab)
				}
			}
			cp.hist_off = C.int(len(s.ids))
			cp.hist_len = C.int(len(ids))
			s.ids = append(s.ids, ids...)
			s.counts = append(s.counts, counts...)
		}
		s.params = append(s.params, cp)
	}
	if sampleBlockTimes {
		s.flags |= C.TK_SAMPLE_BLOCK_TIMES
	}
	if s.flags&C.TK_SAMPLE_TOPP_FAST != 0 {
		if sampleTopPFastAll {
			s.flags |= C.TK_SAMPLE_TOPP_FAST_ALL
		}
		if sampleTopPFallback {
			s.flags |= C.TK_SAMPLE_TOPP_FAST_FALLBACK
		}
	}

	n := int64(len(rows))
	pBytes := n * int64(unsafe.Sizeof(C.tk_sample_params{}))
	rBytes := n * int64(unsafe.Sizeof(C.tk_sample_result{}))
	hBytes := 4 * int64(len(s.ids))
	offR := align256(pBytes)
	offI := offR + align256(rBytes)
	offC := offI + align256(hBytes)
	need := offC + align256(hBytes)
	if need > s.bytes {
		s.free()
		grow := max(need, 2*s.bytes)
		var p unsafe.Pointer
		if rc := C.tk_malloc(&p, C.size_t(grow)); rc != 0 {
			return nil, callError(fmt.Sprintf("cudaMalloc(%d bytes, sampler)", grow), rc)
		}
		s.dev, s.bytes = p, grow
	}
	dParams, dRes := s.dev, unsafe.Add(s.dev, offR)
	dIDs, dCounts := unsafe.Add(s.dev, offI), unsafe.Add(s.dev, offC)
	if rc := C.tk_memcpy_htod(dParams, unsafe.Pointer(&s.params[0]), C.size_t(pBytes), b.stream); rc != 0 {
		return nil, callError("cudaMemcpyAsync(sample params)", rc)
	}
	if hBytes > 0 {
		if rc := C.tk_memcpy_htod(dIDs, unsafe.Pointer(&s.ids[0]), C.size_t(hBytes), b.stream); rc != 0 {
			return nil, callError("cudaMemcpyAsync(sample history)", rc)
		}
		if rc := C.tk_memcpy_htod(dCounts, unsafe.Pointer(&s.counts[0]), C.size_t(hBytes), b.stream); rc != 0 {
			return nil, callError("cudaMemcpyAsync(sample history)", rc)
		}
	}
	// poison the results: a row the kernel never wrote shows as status -1
	if rc := C.tk_memset(dRes, 0xff, C.size_t(rBytes), b.stream); rc != 0 {
		return nil, callError("cudaMemsetAsync(sample results)", rc)
	}
	if rc := C.tk_sample((*C.float)(t.ptr), C.int(n), C.int(vocab), (*C.tk_sample_params)(dParams),
		i32p(dIDs), i32p(dCounts), (*C.tk_sample_result)(dRes), s.flags, b.stream); rc != 0 {
		return nil, callError("sample", rc)
	}
	b.ProfileMark("sample")
	if cap(s.results) < len(rows) {
		s.results = make([]C.tk_sample_result, len(rows))
	}
	s.results = s.results[:len(rows)]
	if rc := C.tk_memcpy_dtoh(unsafe.Pointer(&s.results[0]), dRes, C.size_t(rBytes), b.stream); rc != 0 {
		return nil, callError("cudaMemcpyAsync(sample results)", rc)
	}
	out := make([]sample.Result, len(rows))
	for i := range rows {
		r := &s.results[i]
		switch r.status {
		case 0:
		case 1:
			return nil, fmt.Errorf("row %d: %w", i, sample.ErrNoFiniteLogits)
		case 2:
			return nil, fmt.Errorf("row %d: sample: logit of token %d is +Inf", i, int(r.token))
		default:
			return nil, fmt.Errorf("cuda: sample: row %d: kernel left status %d", i, int(r.status))
		}
		if r.token < 0 || int(r.token) >= vocab {
			return nil, fmt.Errorf("cuda: sample: row %d: token %d outside the vocabulary", i, int(r.token))
		}
		res := sample.Result{Token: int32(r.token)}
		if rows[i].Params.WantLogprobs() {
			res.Logprob = float32(r.logprob)
			if k := int(r.n_top); k > 0 {
				res.Top = make([]sample.TokenLogprob, k)
				for j := range k {
					res.Top[j] = sample.TokenLogprob{ID: int32(r.top_ids[j]), Logprob: float32(r.top_lp[j])}
				}
			}
		}
		out[i] = res
	}
	return out, nil
}

// sampleKernelMS times the sampling kernel alone on logits (penalties
// off), median of reps after warm-up, for benchmarks: launched with each
// run's launch latency (timeMS), queued without it (timeQueuedMS).
// SampleBatch must have run once on rows of the same shape (it leaves the
// parameters on the device).
func (b *Backend) sampleKernelMS(logits backend.Tensor, rows int, reps int) (launched, queued float64, err error) {
	t, err := asTensor(logits, "sample bench")
	if err != nil {
		return 0, 0, err
	}
	s := &b.smp
	if s.dev == nil || len(s.params) != rows {
		return 0, 0, fmt.Errorf("cuda: sample bench: run SampleBatch on %d rows first", rows)
	}
	n := int64(rows)
	offR := align256(n * int64(unsafe.Sizeof(C.tk_sample_params{})))
	run := func() error {
		return callError("sample", C.tk_sample((*C.float)(t.ptr), C.int(rows), C.int(t.shape[1]),
			(*C.tk_sample_params)(s.dev), nil, nil, (*C.tk_sample_result)(unsafe.Add(s.dev, offR)), s.flags, b.stream))
	}
	if launched, err = b.timeMS(run, 3, reps); err != nil {
		return 0, 0, err
	}
	if queued, err = b.timeQueuedMS(run, 3, reps); err != nil {
		return 0, 0, err
	}
	return launched, queued, nil
}

// sampleTopPCounts reports how many rows the one-read top-p drew and sent
// to the cut passes since the last reset (tests and benchmarks); reset
// zeroes the counts after reading them.
func sampleTopPCounts(reset bool) (fast, fallback uint64, err error) {
	var c [2]C.ulonglong
	r := C.int(0)
	if reset {
		r = 1
	}
	if rc := C.tk_sample_topp_counts(&c[0], r); rc != 0 {
		return 0, 0, callError("cudaMemcpyFromSymbol(top-p counts)", rc)
	}
	return uint64(c[0]), uint64(c[1]), nil
}

// samplePhases reports the SM clock at each instrumented phase of the last
// sampling kernel's first block, relative to its start (benchmarks):
// "phase:cycles" for phases that ran.
func samplePhases() string {
	var c [32]C.longlong
	if rc := C.tk_sample_phase_clocks(&c[0], 32); rc != 0 {
		return fmt.Sprintf("phase clocks: error %d", int(rc))
	}
	out := ""
	for i := 1; i < 32; i++ {
		if c[i] > c[0] && c[i]-c[0] < 1<<32 {
			out += fmt.Sprintf(" %d:%d", i, int64(c[i]-c[0]))
		}
	}
	return out
}

// sampleBlockSummary summarizes the last sampling kernel's block times
// (benchmarks, with sampleBlockTimes; the stream synchronized since): the
// span from the first block's start to the last block's end, and per SM
// when its blocks ended: alone, the first and the second of two, or the
// first and the last of more (medians over those SMs, from the first
// start), all in µs; "-" where no SM ran that many. Blocks past the
// TK_SAMPLE_BLOCK_TIMES_MAX-th and entries never written are left out.
func sampleBlockSummary() string {
	const maxBlocks = C.TK_SAMPLE_BLOCK_TIMES_MAX
	buf := make([]C.ulonglong, 3*maxBlocks)
	var nb C.int
	if rc := C.tk_sample_block_times(&buf[0], maxBlocks, &nb); rc != 0 {
		return fmt.Sprintf("block times: error %d", int(rc))
	}
	type span struct{ st, en uint64 }
	bySM := map[uint64][]span{}
	var t0, t1 uint64
	kept := 0
	for i := range min(int(nb), maxBlocks) {
		sm, st, en := uint64(buf[3*i]), uint64(buf[3*i+1]), uint64(buf[3*i+2])
		if st == 0 || en < st {
			continue // not written in the last launch
		}
		if kept == 0 || st < t0 {
			t0 = st
		}
		t1 = max(t1, en)
		kept++
		bySM[sm] = append(bySM[sm], span{st, en})
	}
	if kept == 0 {
		return "no block times"
	}
	us := func(t uint64) float64 { return float64(t-t0) / 1e3 }
	med := func(v []float64) string {
		if len(v) == 0 {
			return "-"
		}
		slices.Sort(v)
		return fmt.Sprintf("%.1f", v[len(v)/2])
	}
	var one, first2, second2, firstN, lastN, durs []float64
	maxDur := 0.0
	for _, bs := range bySM {
		ends := make([]float64, 0, len(bs))
		for _, b := range bs {
			ends = append(ends, us(b.en))
			d := float64(b.en-b.st) / 1e3
			durs = append(durs, d)
			maxDur = max(maxDur, d)
		}
		slices.Sort(ends)
		switch len(ends) {
		case 1:
			one = append(one, ends[0])
		case 2:
			first2 = append(first2, ends[0])
			second2 = append(second2, ends[1])
		default:
			firstN = append(firstN, ends[0])
			lastN = append(lastN, ends[len(ends)-1])
		}
	}
	return fmt.Sprintf("blocks %d of %d on %d SMs, span %.1f us, block duration median %s max %.1f; "+
		"SMs with one block: %d ending at %s; with two: %d, ending at %s and %s; with more: %d, first and last ending at %s and %s (medians)",
		kept, int(nb), len(bySM), us(t1), med(durs), maxDur, len(one), med(one),
		len(first2), med(first2), med(second2), len(firstN), med(firstN), med(lastN))
}
