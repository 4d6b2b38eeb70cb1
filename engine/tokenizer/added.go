package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is a token from tokenizer.json's added_tokens, matched in the
// input text before the model runs.
type addedToken struct {
	content    string
	id         int32
	lstrip     bool // absorb whitespace on the left
	rstrip     bool // absorb whitespace on the right
	singleWord bool // match only when not inside a word
}

// addedMatcher finds added tokens leftmost-longest, as tokenizers' Aho-Corasick
// matcher does: at the earliest position where any token matches, the longest.
type addedMatcher struct {
	byFirst [256][]addedToken // by first byte, longest first
	first   string            // the distinct first bytes, for IndexAny-style scans
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := &addedMatcher{}
	for _, t := range toks {
		if len(m.byFirst[t.content[0]]) == 0 {
			m.first += string([]byte{t.content[0]})
		}
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
	}
	for i := range m.byFirst {
		sort.SliceStable(m.byFirst[i], func(a, b int) bool {
			return len(m.byFirst[i][a].content) > len(m.byFirst[i][b].content)
		})
	}
	return m
}

// split calls emit(text, -1) for each stretch between added tokens and
// emit("", id) for each added token, in order. A nil matcher emits s whole.
func (m *addedMatcher) split(s string, emit func(seg string, id int32)) {
	if m == nil {
		emit(s, -1)
		return
	}
	start := 0 // start of the pending plain stretch
	for i := 0; i < len(s); {
		if next := m.nextCandidate(s, i); next < 0 {
			break
		} else {
			i = next
		}
		tok, ok := m.matchAt(s, i)
		if !ok {
			i++
			continue
		}
		from, to := i, i+len(tok.content)
		if tok.lstrip {
			for from > start {
				r, w := utf8.DecodeLastRuneInString(s[start:from])
				if !unicode.IsSpace(r) {
					break
				}
				from -= w
			}
		}
		if tok.rstrip {
			for to < len(s) {
				r, w := utf8.DecodeRuneInString(s[to:])
				if !unicode.IsSpace(r) {
					break
				}
				to += w
			}
		}
		if start < from {
			emit(s[start:from], -1)
		}
		emit("", tok.id)
		i, start = to, to
	}
	if start < len(s) {
		emit(s[start:], -1)
	}
}

// nextCandidate returns the first index ≥ i where some added token could
// start, or -1.
func (m *addedMatcher) nextCandidate(s string, i int) int {
	if len(m.first) == 1 {
		j := strings.IndexByte(s[i:], m.first[0])
		if j < 0 {
			return -1
		}
		return i + j
	}
	for ; i < len(s); i++ {
		if len(m.byFirst[s[i]]) > 0 {
			return i
		}
	}
	return -1
}

// matchAt returns the longest added token spelled at s[i:].
func (m *addedMatcher) matchAt(s string, i int) (addedToken, bool) {
	for _, tok := range m.byFirst[s[i]] {
		end := i + len(tok.content)
		if end > len(s) || s[i:end] != tok.content {
			continue
		}
		if tok.singleWord && (isWordBefore(s, i) || isWordAfter(s, end)) {
			continue
		}
		return tok, true
	}
	return addedToken{}, false
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func isWordBefore(s string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordRune(r)
}

func isWordAfter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isWordRune(r)
}
