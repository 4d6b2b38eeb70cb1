package servebench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// Report is the JSON document `tokamak bench serve` writes.
type Report struct {
	// Date is when the benchmark ran (RFC 3339).
	Date string `json:"date"`
	// Command is the command line that produced the report.
	Command string `json:"command"`
	// Device describes the server's hardware, as given by the user.
	Device       string   `json:"device,omitempty"`
	URL          string   `json:"url"`
	Model        string   `json:"model"`
	Workload     Workload `json:"workload"`
	SLO          SLO      `json:"slo"`
	GPUHourlyUSD float64  `json:"gpu_hourly_usd,omitempty"`
	// Runs holds one result per offered rate, in the order run.
	Runs []*Result `json:"runs"`
}

// WriteJSON writes the report, indented, to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Text renders a run as a human-readable table.
func (r *Result) Text() string {
	var b strings.Builder
	rate := fmt.Sprintf("%.2f req/s (Poisson)", r.OfferedRate)
	if r.AllAtOnce {
		rate = "all at once"
	}
	fmt.Fprintf(&b, "offered rate        %s\n", rate)
	fmt.Fprintf(&b, "requests            %d completed, %d failed in %.2f s\n", r.Completed, r.Failed, r.DurationSeconds)
	if r.Failed > 0 {
		fmt.Fprintf(&b, "failures            %v (first: %s)\n", r.Statuses, r.FirstError)
	}
	fmt.Fprintf(&b, "throughput          %.2f req/s, %.1f output tok/s, %.1f total tok/s\n", r.RequestsPerSecond, r.OutputTokensPerSecond, r.TotalTokensPerSecond)
	fmt.Fprintf(&b, "goodput (SLO)       %.2f req/s (%d of %d requests)\n", r.GoodputRPS, r.GoodRequests, r.Requests)
	if r.CostPerMillionOutput > 0 {
		fmt.Fprintf(&b, "cost                $%.4f per 1M output tokens\n", r.CostPerMillionOutput)
	}
	fmt.Fprintf(&b, "%-12s %10s %10s %10s %10s\n", "latency ms", "mean", "p50", "p95", "p99")
	for _, row := range []struct {
		name string
		p    Percentiles
	}{{"TTFT", r.TTFT}, {"ITL", r.ITL}, {"TPOT", r.TPOT}, {"E2E", r.E2E}} {
		fmt.Fprintf(&b, "%-12s %10.2f %10.2f %10.2f %10.2f\n", row.name, row.p.Mean, row.p.P50, row.p.P95, row.p.P99)
	}
	return b.String()
}

// WriteSVG draws latency percentiles (p50, p95, p99) against offered rate:
// one panel for time to first token and one for inter-token latency. An
// all-at-once run is drawn to the right of the highest rate, marked "all".
func WriteSVG(w io.Writer, title string, runs []*Result) error {
	if len(runs) == 0 {
		return fmt.Errorf("svg: no runs")
	}
	rs := append([]*Result(nil), runs...)
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].AllAtOnce != rs[j].AllAtOnce {
			return !rs[i].AllAtOnce
		}
		return rs[i].OfferedRate < rs[j].OfferedRate
	})
	maxRate := 0.0
	for _, r := range rs {
		maxRate = math.Max(maxRate, r.OfferedRate)
	}
	if maxRate == 0 {
		maxRate = 1
	}
	xOf := func(r *Result) float64 {
		if r.AllAtOnce {
			return maxRate * 1.2
		}
		return r.OfferedRate
	}
	const panelW, panelH, margin = 420.0, 300.0, 60.0
	width, height := 2*(panelW+margin)+margin, panelH+2*margin+40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" text-anchor="middle" font-size="15">%s</text>`+"\n", width/2, escape(title))
	panels := []struct {
		name string
		get  func(*Result) Percentiles
	}{
		{"time to first token (ms)", func(r *Result) Percentiles { return r.TTFT }},
		{"inter-token latency (ms)", func(r *Result) Percentiles { return r.ITL }},
	}
	series := []struct {
		name  string
		color string
		get   func(Percentiles) float64
	}{
		{"p50", "#1f77b4", func(p Percentiles) float64 { return p.P50 }},
		{"p95", "#ff7f0e", func(p Percentiles) float64 { return p.P95 }},
		{"p99", "#d62728", func(p Percentiles) float64 { return p.P99 }},
	}
	xMax := maxRate * 1.3
	for pi, panel := range panels {
		x0, y0 := margin+float64(pi)*(panelW+margin), margin+20
		yMax := 0.0
		for _, r := range rs {
			yMax = math.Max(yMax, panel.get(r).P99)
		}
		yMax = niceCeil(yMax)
		px := func(x float64) float64 { return x0 + x/xMax*panelW }
		py := func(y float64) float64 { return y0 + panelH - y/yMax*panelH }
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", x0, y0, panelW, panelH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, y0-8, escape(panel.name))
		for i := 0; i <= 5; i++ {
			v := yMax * float64(i) / 5
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, py(v), x0+panelW, py(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-4, py(v)+4, fmtNum(v))
		}
		for _, r := range rs {
			label := fmtNum(r.OfferedRate)
			if r.AllAtOnce {
				label = "all"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(xOf(r)), y0+panelH+16, label)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">offered rate (requests/s)</text>`+"\n", x0+panelW/2, y0+panelH+34)
		for si, s := range series {
			pts := make([]string, len(rs))
			for i, r := range rs {
				pts[i] = fmt.Sprintf("%.1f,%.1f", px(xOf(r)), py(s.get(panel.get(r))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
			}
			lx, ly := x0+10, y0+16+float64(si)*16
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+18, ly-4, s.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+22, ly, s.name)
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
