package sample

import "strings"

// StopMatcher finds stop strings in a stream of decoded text. Text that
// could still be the start of a stop string is held back until it cannot;
// the stop string itself, and anything after it, is never emitted. One
// matcher serves one sequence; it is not safe for concurrent use.
type StopMatcher struct {
	stops   []string
	maxLen  int
	held    string
	stopped bool
}

// NewStopMatcher makes a matcher for the given stop strings; empty strings
// are ignored. With no stop strings every piece passes straight through.
func NewStopMatcher(stops []string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
			m.maxLen = max(m.maxLen, len(s))
		}
	}
	return m
}

// Push adds the next decoded piece. It returns the text that is now safe
// to emit and whether a stop string has matched; after a match the
// sequence is over and later pushes return ("", true).
func (m *StopMatcher) Push(piece string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	if len(m.stops) == 0 {
		return piece, false
	}
	buf := m.held + piece
	at := -1
	for _, s := range m.stops {
		if i := strings.Index(buf, s); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	if at >= 0 {
		m.stopped, m.held = true, ""
		return buf[:at], true
	}
	// Hold the longest suffix that is a proper prefix of some stop string.
	hold := 0
	for k := min(len(buf), m.maxLen-1); k > 0 && hold == 0; k-- {
		suffix := buf[len(buf)-k:]
		for _, s := range m.stops {
			if strings.HasPrefix(s, suffix) {
				hold = k
				break
			}
		}
	}
	m.held = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

// Flush returns the held-back text when the sequence ends for another
// reason (EOS, length); it is empty after a stop string matched.
func (m *StopMatcher) Flush() string {
	h := m.held
	m.held = ""
	return h
}

// Stopped reports whether a stop string has matched.
func (m *StopMatcher) Stopped() bool { return m.stopped }
