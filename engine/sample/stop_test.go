package sample

import (
	"strings"
	"testing"
)

func TestStopMatcher(t *testing.T) {
	cases := []struct {
		name    string
		stops   []string
		pieces  []string
		emitted []string // per piece
		stopAt  int      // index of the piece that stops, -1 for none
		flush   string
	}{
		{"no stops pass through", nil, []string{"a", "b"}, []string{"a", "b"}, -1, ""},
		{"stop inside one piece", []string{"END"}, []string{"abcENDxyz"}, []string{"abc"}, 0, ""},
		{"stop split across pieces", []string{"END"}, []string{"ab", "cE", "N", "Dzz"}, []string{"ab", "c", "", ""}, 3, ""},
		{"false start is released", []string{"END"}, []string{"xE", "Nx", "y"}, []string{"x", "ENx", "y"}, -1, ""},
		{"held text flushed at the end", []string{"END"}, []string{"foo E", "N"}, []string{"foo ", ""}, -1, "EN"},
		{"earliest of several stops wins", []string{"world", "lo w"}, []string{"hello world"}, []string{"hel"}, 0, ""},
		{"stop at the very start", []string{"\n\n"}, []string{"\n", "\nrest"}, []string{"", ""}, 1, ""},
		{"overlapping prefix keeps the longest candidate", []string{"aab"}, []string{"a", "a", "a", "b"}, []string{"", "", "a", ""}, 3, ""},
		{"multibyte stop", []string{"こんに"}, []string{"やあこ", "んにちは"}, []string{"やあ", ""}, 1, ""},
		{"empty stop strings ignored", []string{""}, []string{"abc"}, []string{"abc"}, -1, ""},
		{"pushes after a stop emit nothing", []string{"x"}, []string{"ax", "more"}, []string{"a", ""}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := NewStopMatcher(c.stops)
			stoppedAt := -1
			var all strings.Builder
			for i, p := range c.pieces {
				emit, stopped := m.Push(p)
				if emit != c.emitted[i] {
					t.Errorf("piece %d %q: emitted %q, want %q", i, p, emit, c.emitted[i])
				}
				all.WriteString(emit)
				if stopped && stoppedAt < 0 {
					stoppedAt = i
				}
			}
			if stoppedAt != c.stopAt || m.Stopped() != (c.stopAt >= 0) {
				t.Errorf("stopped at piece %d, want %d", stoppedAt, c.stopAt)
			}
			if f := m.Flush(); f != c.flush {
				t.Errorf("flush %q, want %q", f, c.flush)
			}
			for _, s := range c.stops {
				if s != "" && strings.Contains(all.String(), s) {
					t.Errorf("stop string %q was emitted in %q", s, all.String())
				}
			}
		})
	}
}
