//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cpu"
)

func openTest(tb testing.TB) *Backend {
	tb.Helper()
	b, err := Open(Options{})
	if err != nil {
		tb.Fatalf("open CUDA backend: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func relErr(got, want []float32) (float64, int) {
	var num, den float64
	bad := -1
	for i := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			if bad < 0 {
				bad = i
			}
			continue
		}
		d := g - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if bad >= 0 {
		return math.Inf(1), bad
	}
	if den == 0 {
		return math.Sqrt(num), -1
	}
	return math.Sqrt(num / den), -1
}

// TestOpParity runs every op-table case on the GPU and on the CPU oracle
// from the same fresh random inputs (GPU outputs poisoned first) and checks
// the relative error against the case's tolerance.
func TestOpParity(t *testing.T) {
	gpu := openTest(t)
	ref := cpu.New()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for i, c := range opTable() {
		t.Run(c.name, func(t *testing.T) {
			s := seed + int64(i)
			pg, err := c.prep(gpu, rand.New(rand.NewSource(s)))
			if err != nil {
				t.Fatalf("prepare on GPU: %v", err)
			}
			pc, err := c.prep(ref, rand.New(rand.NewSource(s)))
			if err != nil {
				t.Fatalf("prepare on CPU: %v", err)
			}
			for _, o := range pg.outs {
				if err := gpu.poison(o); err != nil {
					t.Fatal(err)
				}
			}
			if err := pg.run(); err != nil {
				t.Fatalf("GPU: %v", err)
			}
			if err := gpu.Sync(); err != nil {
				t.Fatalf("GPU sync: %v", err)
			}
			if err := pc.run(); err != nil {
				t.Fatalf("CPU: %v", err)
			}
			g := append(pg.outs, pg.inout...)
			w := append(pc.outs, pc.inout...)
			for k := range g {
				gv, err := gpu.Download(g[k])
				if err != nil {
					t.Fatal(err)
				}
				wv, err := ref.Download(w[k])
				if err != nil {
					t.Fatal(err)
				}
				if len(gv) != len(wv) {
					t.Fatalf("output %d: %d elements on GPU, %d on CPU", k, len(gv), len(wv))
				}
				e, bad := relErr(gv, wv)
				if bad >= 0 {
					t.Fatalf("output %d: element %d is %v (unwritten or not finite)", k, bad, gv[bad])
				}
				if e > c.tol {
					t.Errorf("output %d: relative error %.3g > %.3g", k, e, c.tol)
				} else {
					t.Logf("output %d: relative error %.3g", k, e)
				}
			}
		})
	}
}

// TestGraphReplayMatchesEager captures a decode-like op sequence and checks
// that replaying it on a newly staged step gives the eager result, on the
// default attention kernels and the balanced decode kernel (variants 4, 5).
func TestGraphReplayMatchesEager(t *testing.T) {
	for _, v := range []int{0, 4, 5} {
		t.Run(fmt.Sprintf("variant%d", v), func(t *testing.T) {
			gpu := openTest(t)
			c := onVariant(attnCase("graph", []int{1, 1}, []int{50, 90}, 8, 2, 64), v, "graph")
			r := rand.New(rand.NewSource(7))
			p, err := c.prep(gpu, r)
			if err != nil {
				t.Fatal(err)
			}
			// run runs the graph key (first: warm-up and capture, then
			// replays) and downloads the output
			run := func() []float32 {
				t.Helper()
				if err := gpu.RunGraph("test", p.run); err != nil {
					t.Fatal(err)
				}
				if err := gpu.Sync(); err != nil {
					t.Fatal(err)
				}
				v, err := gpu.Download(p.outs[1])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			eager := run()
			if err := gpu.poison(p.outs[1]); err != nil {
				t.Fatal(err)
			}
			replay := run()
			if e, bad := relErr(replay, eager); bad >= 0 || e > 1e-6 {
				t.Fatalf("replay differs from eager: rel err %g, first bad element %d", e, bad)
			}
			if len(gpu.graphs) != 1 {
				t.Fatalf("%d graphs captured, want 1", len(gpu.graphs))
			}
		})
	}
}

// BenchmarkOps times every op-table case on the GPU with CUDA events and
// reports achieved GB/s and TFLOP/s.
func BenchmarkOps(b *testing.B) {
	gpu := openTest(b)
	for _, c := range benchTable() {
		b.Run(c.name, func(b *testing.B) {
			p, err := c.prep(gpu, rand.New(rand.NewSource(1)))
			if err != nil {
				b.Fatal(err)
			}
			if p.free != nil {
				defer p.free()
			}
			ms, err := gpu.timeMS(p.run, 3, max(b.N, 10))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(ms*1e3, "us/op")
			b.ReportMetric(c.bytes/(ms*1e-3)/1e9, "GB/s")
			if c.flops > 0 {
				b.ReportMetric(c.flops/(ms*1e-3)/1e12, "TFLOP/s")
			}
		})
	}
}
