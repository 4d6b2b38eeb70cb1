package servebench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress draws a one-line progress bar, redrawn in place (for stderr).
type Progress struct {
	w     io.Writer
	label string
	start time.Time
	mu    sync.Mutex
	last  time.Time
}

// NewProgress returns a bar labelled label writing to w.
func NewProgress(w io.Writer, label string) *Progress {
	return &Progress{w: w, label: label, start: time.Now()}
}

// Update redraws the bar (at most every 100 ms, and always at the end).
func (p *Progress) Update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %.1fs", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		done, total, now.Sub(p.start).Seconds())
	if done >= total {
		fmt.Fprintln(p.w)
	}
}
