//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/sample"
)

// logitDist makes one row of logits.
type logitDist struct {
	name string
	gen  func(r *rand.Rand, v []float32)
}

func sampleDists() []logitDist {
	return []logitDist{
		{"normal", func(r *rand.Rand, v []float32) {
			for i := range v {
				v[i] = float32(r.NormFloat64() * 3)
			}
		}},
		{"peaked", func(r *rand.Rand, v []float32) {
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			for range 5 {
				v[r.Intn(len(v))] = 12 + 4*r.Float32()
			}
		}},
		{"ties", func(r *rand.Rand, v []float32) { // quantized: many equal logits
			for i := range v {
				v[i] = float32(math.Round(r.NormFloat64()*4)) / 2
			}
		}},
		{"nan-inf", func(r *rand.Rand, v []float32) {
			for i := range v {
				switch r.Intn(10) {
				case 0:
					v[i] = float32(math.NaN())
				case 1:
					v[i] = float32(math.Inf(-1))
				default:
					v[i] = float32(r.NormFloat64() * 2)
				}
			}
		}},
		{"flat", func(r *rand.Rand, v []float32) { // one bucket holds everything: bisection path
			for i := range v {
				v[i] = 0.5
			}
		}},
		{"one-token", func(r *rand.Rand, v []float32) { // only one token of weight > 0
			for i := range v {
				v[i] = -1000
			}
			v[r.Intn(len(v))] = 3
		}},
		{"sharp", func(r *rand.Rand, v []float32) { // top logits of 100-400
			for i := range v {
				v[i] = float32(r.NormFloat64() * 30)
			}
			for range 8 {
				v[r.Intn(len(v))] = 100 + 300*r.Float32()
			}
		}},
		{"masked", func(r *rand.Rand, v []float32) { // the low ids -Inf but one: a top-k list's sample holds fewer than k finite logits
			lo := min(len(v), 4096)
			for i := range v {
				if i < lo {
					v[i] = float32(math.Inf(-1))
				} else {
					v[i] = float32(r.NormFloat64())
				}
			}
			v[r.Intn(lo)] = 10
		}},
		// top-p in one read places its histogram's window below the
		// maximum of a sample of the row (toppSampled): a sample of -Inf
		// only (every finite token goes to its list), and a sample of the
		// row's lowest logits (in the larger vocabularies the list
		// overflows: the cut passes)
		{"sample-blind", func(r *rand.Rand, v []float32) {
			in := toppSampled(len(v))
			for i := range v {
				v[i] = float32(math.Inf(-1))
			}
			for range 700 {
				if i := r.Intn(len(v)); !in[i] {
					v[i] = float32(r.NormFloat64() * 2)
				}
			}
			j := len(v) / 2 // at least one finite token outside the sample
			for j < len(v)-1 && in[j] {
				j++
			}
			v[j] = 4
		}},
		{"sample-low", func(r *rand.Rand, v []float32) {
			in := toppSampled(len(v))
			for i := range v {
				v[i] = float32(r.NormFloat64())
				if in[i] {
					v[i] -= 20
				}
			}
		}},
		{"huge", func(r *rand.Rand, v []float32) { // l*WeightScale overflows: infinite race keys, ties by id
			for i := range v {
				v[i] = float32(r.NormFloat64() * 1e36)
			}
			// finite under a repetition penalty of 0.8 (x / 0.8); 2.5e38 is
			// past FLT_MAX / log2(e), where x * log2(e) overflows
			v[r.Intn(len(v))] = 2.5e38
			v[r.Intn(len(v))] = 1e38
		}},
	}
}

// toppSampled marks the ids of the samples the one-read top-p takes of a
// row of n (kernels/sample.cu, tp_scan: four runs of 32 ids a warp,
// spread evenly), for its kernels of 512 and 1024 threads.
func toppSampled(n int) []bool {
	in := make([]bool, n)
	for _, runs := range []int{64, 128} {
		runs = min(runs, n/32)
		for r := range runs {
			for i := r * (n / runs); i < r*(n/runs)+32; i++ {
				in[i] = true
			}
		}
	}
	return in
}

func sampleParams() []sample.Params {
	return []sample.Params{
		{},
		{Logprobs: true, TopLogprobs: 5},
		{Temperature: 0.7},
		{Temperature: 0.9, Logprobs: true, TopLogprobs: 2},
		{Temperature: 2e-5, TopK: 50}, // keys near 2^35: the scan's float margins
		{Temperature: 1, TopP: 0.9},
		{Temperature: 0.8, TopK: 50},
		{Temperature: 1, TopK: 40, TopP: 0.8, MinP: 0.05},
		// top-k up to 64 without logprobs cuts from the max pass's lists
		// (KList): its largest k with top-p, a tiny k with every cut, and
		// the first k past it (the cut passes)
		{Temperature: 1, TopK: 64, TopP: 0.9},
		{Temperature: 0.9, TopK: 2, TopP: 0.5, MinP: 0.3, RepetitionPenalty: 1.2},
		{Temperature: 1, TopK: 65, TopP: 0.9},
		{Temperature: 1.3, TopP: 0.95, RepetitionPenalty: 1.2, PresencePenalty: 0.5, FrequencyPenalty: 0.3},
		{Temperature: 1, TopK: 1000, Logprobs: true, TopLogprobs: 20},
		{Temperature: 2, MinP: 0.1, Logprobs: true},
		{RepetitionPenalty: 0.8, PresencePenalty: -1, FrequencyPenalty: 2, Logprobs: true, TopLogprobs: 3},
		// min-p alone: the max pass lists the candidates (MinpList); with
		// T = 3 and min-p 0.01 most of a 128k row survives, the lists
		// overflow and the race reads the row again
		{Temperature: 0.8, MinP: 0.05},
		{Temperature: 3, MinP: 0.01},
		{Temperature: 1.1, MinP: 0.2, RepetitionPenalty: 1.3, FrequencyPenalty: 0.5},
		// top-p below the one-read path's 0.8: the cut passes, or (with
		// sampleTopPFastAll) the one read and often its fallback; at
		// 0.005 on flat rows the survivors' winner ranks far below the 7
		// best keys, under the max pass's race threshold (a fallback
		// that kept that threshold drew wrong tokens)
		{Temperature: 0.7, TopP: 0.3},
		{Temperature: 1, TopP: 0.6},
		{Temperature: 1, TopP: 0.005},
	}
}

func randHistory(r *rand.Rand, vocab int) *sample.History {
	prompt := make([]int32, 50+r.Intn(200))
	for i := range prompt {
		prompt[i] = int32(r.Intn(vocab))
	}
	h := sample.NewHistory(prompt)
	for range r.Intn(100) {
		h.Append(prompt[r.Intn(len(prompt))])
		h.Append(int32(r.Intn(vocab)))
	}
	return h
}

func f32Bytes(v []float32) []byte {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		u := math.Float32bits(f)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return raw
}

// TestSampleMatchesCPU samples a batch of every (distribution, params,
// draw) on the GPU with the fused kernel and on the CPU reference from
// the same fresh random logits, and requires the same tokens, the same
// top-logprob ids and logprobs within float32 summation error.
func TestSampleMatchesCPU(t *testing.T) {
	gpu := openTest(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	// 128257: not a multiple of 4, so a whole row goes through the
	// scans' unaligned path
	for _, vocab := range []int{1001, 32000, 128256, 128257} {
		t.Run(fmt.Sprintf("vocab%d", vocab), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed + int64(vocab)))
			var host []float32
			var rows []sample.Row
			var names []string
			row := make([]float32, vocab)
			for _, d := range sampleDists() {
				for pi, p := range sampleParams() {
					p.Seed = r.Uint64()
					var h *sample.History
					if p.Penalised() {
						h = randHistory(r, vocab)
					}
					d.gen(r, row)
					for draw := range 3 {
						host = append(host, row...)
						rows = append(rows, sample.Row{Params: p, History: h, Draw: uint64(draw * 7)})
						names = append(names, fmt.Sprintf("%s/params%d/draw%d", d.name, pi, draw))
					}
				}
			}
			want, err := sample.SampleRows(host, vocab, rows)
			if err != nil {
				t.Fatalf("cpu: %v", err)
			}
			// chunks of 1, 33 and 60 rows and the whole batch: the kernel's
			// cluster shapes (8 blocks a row with staged slices, 2 blocks a
			// row, one block a row), with the top-k lists and the one-read
			// top-p off (runs 0-3) and on (4-7: every top-p row taking it in
			// 5 and 7), then the whole batch again with every top-p row
			// taking it and falling back after its read (8), and with the
			// lists off (9: the batch has top-k rows, so runs 7 and 8 run
			// the one-read kernel of 512 threads that has the lists, run 9
			// the one of 1024 threads). The path needs one block a row: the
			// whole batch, or TOKAMAK_SAMPLE_CLUSTER=1 for every chunk size.
			const tol = 2e-3
			bad := 0
			// the whole batch (hundreds of rows) runs one block a row, the
			// one-read top-p's shape, unless the environment forces another
			forced := os.Getenv("TOKAMAK_SAMPLE_CLUSTER")
			oneBlockARow := (forced == "" || forced == "1") && os.Getenv("TOKAMAK_SAMPLE_C1_THREADS") != "1024"
			defer func(on, fast, all bool) {
				sampleTopKLists, sampleTopPFast, sampleTopPFastAll, sampleTopPFallback = on, fast, all, false
			}(sampleTopKLists, sampleTopPFast, sampleTopPFastAll)
			for run := range 10 {
				bs := len(rows)
				if run < 8 {
					bs = []int{1, 33, 60, len(rows)}[run%4]
				}
				sampleTopKLists = run >= 4 && run < 9
				sampleTopPFast = run >= 4
				sampleTopPFastAll = run == 5 || run >= 7
				sampleTopPFallback = run == 8
				if _, _, err := sampleTopPCounts(true); err != nil {
					t.Fatal(err)
				}
				got := make([]sample.Result, 0, len(rows))
				for lo := 0; lo < len(rows); lo += bs {
					hi := min(lo+bs, len(rows))
					lt, err := gpu.Upload(backend.F32, []int{hi - lo, vocab}, f32Bytes(host[lo*vocab:hi*vocab]))
					if err != nil {
						t.Fatal(err)
					}
					res, err := gpu.SampleBatch(lt, rows[lo:hi])
					gpu.Free(lt)
					if err != nil {
						t.Fatalf("gpu, chunks of %d: %v", bs, err)
					}
					got = append(got, res...)
				}
				fast, fallback, err := sampleTopPCounts(true)
				if err != nil {
					t.Fatal(err)
				}
				if sampleTopPFast {
					t.Logf("chunks of %d, lists %v, all %v, fallback forced %v: one-read top-p drew %d rows, %d to the cut passes",
						bs, sampleTopKLists, sampleTopPFastAll, sampleTopPFallback, fast, fallback)
				}
				switch {
				case sampleTopPFallback && fast != 0:
					t.Errorf("chunks of %d: one-read top-p drew %d rows with the fallback forced", bs, fast)
				case (run == 7 || run == 9) && fast == 0 && oneBlockARow:
					// the whole batch runs one block a row: its top-p rows take the one read
					t.Errorf("whole batch, lists %v: one-read top-p drew no row (%d to the cut passes)", sampleTopKLists, fallback)
				case run == 8 && fallback == 0 && oneBlockARow:
					t.Errorf("whole batch, fallback forced: no row went to the cut passes (%d drawn)", fast)
				}
				for i := range rows {
					g, w := got[i], want[i]
					lp := host[i*vocab : (i+1)*vocab]
					msg := ""
					switch {
					case g.Token != w.Token:
						msg = fmt.Sprintf("token %d (logit %g), cpu %d (logit %g)", g.Token, lp[g.Token], w.Token, lp[w.Token])
					case math.Abs(float64(g.Logprob-w.Logprob)) > tol:
						msg = fmt.Sprintf("logprob %g, cpu %g", g.Logprob, w.Logprob)
					case len(g.Top) != len(w.Top):
						msg = fmt.Sprintf("%d top logprobs, cpu %d", len(g.Top), len(w.Top))
					default:
						for j := range w.Top {
							if g.Top[j].ID != w.Top[j].ID || math.Abs(float64(g.Top[j].Logprob-w.Top[j].Logprob)) > tol {
								msg = fmt.Sprintf("top %d: %v, cpu %v", j, g.Top[j], w.Top[j])
								break
							}
						}
					}
					if msg != "" {
						bad++
						if bad <= 10 {
							t.Errorf("chunks of %d, top-k lists %v, one-read top-p %v (all %v): %s: %s",
								bs, sampleTopKLists, sampleTopPFast, sampleTopPFastAll, names[i], msg)
						}
					}
				}
			}
			t.Logf("%d rows in chunks of 1, 33, 60 and %d, top-k lists and one-read top-p off and on, and its fallback forced: %d differ", len(rows), len(rows), bad)
		})
	}
}

// TestSampleReportsBadRows checks the kernel's error statuses: a row with
// no finite logit and a row with +Inf fail the batch with the CPU's errors.
func TestSampleReportsBadRows(t *testing.T) {
	gpu := openTest(t)
	const vocab = 64
	for _, c := range []struct {
		name string
		fill float32
		want error
	}{
		{"all-nan", float32(math.NaN()), sample.ErrNoFiniteLogits},
		{"all-neg-inf", float32(math.Inf(-1)), sample.ErrNoFiniteLogits},
		{"pos-inf", float32(math.Inf(1)), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := make([]float32, 2*vocab)
			for i := range vocab {
				host[i] = float32(i % 7)
			}
			for i := vocab; i < 2*vocab; i++ {
				host[i] = c.fill
			}
			if c.name == "pos-inf" {
				for i := vocab; i < 2*vocab; i++ {
					host[i] = 1
				}
				host[vocab+5] = c.fill
			}
			rows := []sample.Row{{Params: sample.Params{Temperature: 1, TopP: 0.5}}, {Params: sample.Params{Temperature: 1}}}
			_, cpuErr := sample.SampleRows(host, vocab, rows)
			lt, err := gpu.Upload(backend.F32, []int{2, vocab}, f32Bytes(host))
			if err != nil {
				t.Fatal(err)
			}
			defer gpu.Free(lt)
			_, gpuErr := gpu.SampleBatch(lt, rows)
			if gpuErr == nil || cpuErr == nil {
				t.Fatalf("gpu err %v, cpu err %v: both must fail", gpuErr, cpuErr)
			}
			if c.want != nil && (!errors.Is(gpuErr, c.want) || !errors.Is(cpuErr, c.want)) {
				t.Fatalf("gpu err %v, cpu err %v, want %v", gpuErr, cpuErr, c.want)
			}
		})
	}
}

// BenchmarkSampleFused times the fused sampling kernel over a
// 128,256-token vocabulary at batch 1, 64 and 256 for common parameter
// mixes (kernel alone, CUDA events, median: each launch timed with its
// latency, and queued behind a device wait without it), and SampleBatch
// end to end (parameters up, results down).
func BenchmarkSampleFused(b *testing.B) {
	gpu := openTest(b)
	const vocab = 128256
	modes := []struct {
		name   string
		p      sample.Params
		odd    *sample.Params // the odd rows' parameters, where they differ
		masked bool           // the masked logits: 64 finite a row, the rest -Inf
	}{
		{"greedy", sample.Params{}, nil, false},
		{"temp", sample.Params{Temperature: 0.8}, nil, false},
		{"minp0.05", sample.Params{Temperature: 0.8, MinP: 0.05}, nil, false},
		{"topp0.9", sample.Params{Temperature: 1, TopP: 0.9}, nil, false},
		{"topk50-topp0.9", sample.Params{Temperature: 1, TopK: 50, TopP: 0.9}, nil, false},
		// a batch of both: the one-read top-p kernel with the top-k lists
		{"topp-mix-topk50", sample.Params{Temperature: 1, TopP: 0.9}, &sample.Params{Temperature: 1, TopK: 50, TopP: 0.9}, false},
		{"greedy-logprobs5", sample.Params{Logprobs: true, TopLogprobs: 5}, nil, false},
		{"temp-logprobs5", sample.Params{Temperature: 0.8, Logprobs: true, TopLogprobs: 5}, nil, false},
		// rows as a grammar or a logit bias leaves them: few tokens finite
		{"masked-temp", sample.Params{Temperature: 0.8}, nil, true},
		{"masked-topp0.9", sample.Params{Temperature: 1, TopP: 0.9}, nil, true},
	}
	r := rand.New(rand.NewSource(1))
	batches := []int{1, 64, 256}
	if e := os.Getenv("TOKAMAK_SAMPLE_BATCHES"); e != "" { // e.g. "128,132,133,256"
		batches = batches[:0]
		for _, f := range strings.Split(e, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("TOKAMAK_SAMPLE_BATCHES: bad batch %q", f)
			}
			batches = append(batches, n)
		}
	}
	for _, batch := range batches {
		host := make([]float32, batch*vocab)
		for i := range host {
			host[i] = float32(r.NormFloat64() * 2)
		}
		lt, err := gpu.Upload(backend.F32, []int{batch, vocab}, f32Bytes(host))
		if err != nil {
			b.Fatal(err)
		}
		for i := range host {
			host[i] = float32(math.Inf(-1))
		}
		rm := rand.New(rand.NewSource(int64(batch))) // not r: the other modes' logits stay as before
		for row := range batch {
			for range 64 {
				host[row*vocab+rm.Intn(vocab)] = float32(rm.NormFloat64() * 2)
			}
		}
		lm, err := gpu.Upload(backend.F32, []int{batch, vocab}, f32Bytes(host))
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range modes {
			lt := lt
			if m.masked {
				lt = lm
			}
			b.Run(fmt.Sprintf("b%d/%s", batch, m.name), func(b *testing.B) {
				rows := make([]sample.Row, batch)
				for i := range rows {
					rows[i] = sample.Row{Params: m.p, Draw: uint64(i)}
					if m.odd != nil && i%2 == 1 {
						rows[i].Params = *m.odd
					}
				}
				if _, _, err := sampleTopPCounts(true); err != nil {
					b.Fatal(err)
				}
				if _, err := gpu.SampleBatch(lt, rows); err != nil {
					b.Fatal(err)
				}
				if fast, fallback, err := sampleTopPCounts(true); err != nil {
					b.Fatal(err)
				} else if fast+fallback > 0 {
					fmt.Printf("SAMPLE-TOPP %-18s batch %3d  one read drew %d rows, %d to the cut passes\n", m.name, batch, fast, fallback)
				}
				reps := max(b.N, 10)
				t0 := time.Now()
				for range reps {
					if _, err := gpu.SampleBatch(lt, rows); err != nil {
						b.Fatal(err)
					}
				}
				e2e := time.Since(t0).Seconds() / float64(reps)
				ms, qms, err := gpu.sampleKernelMS(lt, batch, reps)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(ms*1e3, "us/kernel")
				b.ReportMetric(qms*1e3, "us/kernel-queued")
				b.ReportMetric(e2e*1e6, "us/call")
				b.ReportMetric(float64(batch*vocab*4)/(ms*1e-3)/1e9, "GB/s-1pass")
				// kernel: each launch timed with its latency, as before
				// session 12; queued: behind a device wait, without it
				fmt.Printf("SAMPLE %-18s batch %3d  kernel %8.1f us  SampleBatch %8.1f us  queued %8.1f us\n",
					m.name, batch, ms*1e3, e2e*1e6, qms*1e3)
				if batch == 1 || os.Getenv("TOKAMAK_SAMPLE_PHASES") != "" {
					fmt.Printf("SAMPLE-PHASES %-18s %s\n", m.name, samplePhases())
					if sampleBlockTimes {
						fmt.Printf("SAMPLE-BLOCKS %-18s batch %3d  %s\n", m.name, batch, sampleBlockSummary())
					}
				}
			})
		}
		gpu.Free(lt)
		gpu.Free(lm)
	}
}
