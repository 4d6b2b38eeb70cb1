package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer regexes of GPT-2, Llama 3 and Qwen2/3 use a lookahead
// (`\s+(?!\S)`) that Go's regexp lacks. splitWords is a hand-written scanner
// that implements exactly their leftmost-first alternation, one alternative
// per branch below, over Unicode tables (\s = White_Space, \p{L}, \p{N}).

// wordPattern identifies one of the supported pre-tokenizer regexes.
type wordPattern int

const (
	// patternLlama3 is Llama 3's: contractions, [^\r\n\p{L}\p{N}]?\p{L}+,
	// \p{N}{1,3}, punctuation runs with trailing newlines, whitespace rules.
	patternLlama3 wordPattern = iota
	// patternQwen is Qwen2/3's: Llama 3's with single digits (\p{N}).
	patternQwen
	// patternGPT2 is GPT-2's: 's|'t|... | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+.
	patternGPT2
)

const (
	regexLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexQwen   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	regexGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// patternFor maps a tokenizer.json Split regex to a scanner.
func patternFor(regex string) (wordPattern, bool) {
	switch regex {
	case regexLlama3:
		return patternLlama3, true
	case regexQwen:
		return patternQwen, true
	case regexGPT2:
		return patternGPT2, true
	}
	return 0, false
}

func isLetter(r rune) bool {
	return r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') || r >= utf8.RuneSelf && unicode.IsLetter(r)
}
func isNumber(r rune) bool { return '0' <= r && r <= '9' || r >= utf8.RuneSelf && unicode.IsNumber(r) }
func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return unicode.IsSpace(r)
}

// at decodes the rune at s[i:], returning utf8.RuneError and width 0 at the end.
func at(s string, i int) (rune, int) {
	if i >= len(s) {
		return utf8.RuneError, 0
	}
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// splitWords calls emit for each pre-token of s, in order; the pieces
// concatenate to s. Text no alternative matches becomes its own piece, as
// the Split pre-tokenizer's Isolated behaviour does.
func splitWords(s string, p wordPattern, emit func(string)) {
	gap := 0
	for i := 0; i < len(s); {
		n := matchAt(s, i, p)
		if n == 0 {
			_, w := at(s, i)
			i += w
			continue
		}
		if gap < i {
			emit(s[gap:i])
		}
		emit(s[i : i+n])
		i += n
		gap = i
	}
	if gap < len(s) {
		emit(s[gap:])
	}
}

// matchAt returns the length of the leftmost-first match at s[i:], 0 if none.
func matchAt(s string, i int, p wordPattern) int {
	if n := matchContraction(s, i, p != patternGPT2); n > 0 {
		return n
	}
	r, w := at(s, i)
	if p == patternGPT2 {
		j := i
		if r == ' ' {
			j += w
		}
		if n := runOf(s, j, isLetter); n > 0 {
			return j - i + n
		}
		if n := runOf(s, j, isNumber); n > 0 {
			return j - i + n
		}
		if n := runOf(s, j, isPunct); n > 0 {
			return j - i + n
		}
		return matchSpace(s, i)
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	j := i
	if r != '\r' && r != '\n' && !isLetter(r) && !isNumber(r) && w > 0 {
		j += w
	}
	if n := runOf(s, j, isLetter); n > 0 {
		return j - i + n
	}
	if n := runOf(s, i, isLetter); n > 0 {
		return n
	}
	// \p{N}{1,3} or \p{N}
	if isNumber(r) {
		limit := 3
		if p == patternQwen {
			limit = 1
		}
		j := i
		for k := 0; k < limit; k++ {
			r2, w2 := at(s, j)
			if w2 == 0 || !isNumber(r2) {
				break
			}
			j += w2
		}
		return j - i
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j = i
	if r == ' ' {
		j++
	}
	if n := runOf(s, j, isPunct); n > 0 {
		j += n
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	// \s*[\r\n]+ : the whitespace run up to and including its last CR or LF.
	if isSpace(r) {
		end, lastNL := i, -1
		for {
			r2, w2 := at(s, end)
			if w2 == 0 || !isSpace(r2) {
				break
			}
			if r2 == '\r' || r2 == '\n' {
				lastNL = end + 1
			}
			end += w2
		}
		if lastNL > 0 {
			return lastNL - i
		}
	}
	return matchSpace(s, i)
}

// matchSpace implements `\s+(?!\S)|\s+`: a whitespace run, minus its last
// rune when a non-space follows and the run is longer than one rune.
func matchSpace(s string, i int) int {
	end, last := i, i
	for {
		r, w := at(s, end)
		if w == 0 || !isSpace(r) {
			break
		}
		last = end
		end += w
	}
	if end == i {
		return 0
	}
	if end < len(s) && last > i {
		return last - i
	}
	return end - i
}

func isPunct(r rune) bool { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

// runOf returns the byte length of the run of runes satisfying f at s[i:].
func runOf(s string, i int, f func(rune) bool) int {
	j := i
	for {
		r, w := at(s, j)
		if w == 0 || !f(r) {
			return j - i
		}
		j += w
	}
}

// matchContraction matches 's 't 're 've 'm 'll 'd, case-insensitively when
// fold is set (Unicode simple folding: 's' also matches U+017F and 'K'-like
// folds do not occur in these suffixes).
func matchContraction(s string, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(j int) (rune, int) {
		r, w := at(s, j)
		if fold {
			if r == 0x17F { // LATIN SMALL LETTER LONG S folds to 's'
				return 's', w
			}
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
		}
		return r, w
	}
	r1, w1 := lower(i + 1)
	switch r1 {
	case 's', 't', 'm', 'd':
		return 1 + w1
	case 'r', 'v', 'l':
		want := 'e'
		if r1 == 'l' {
			want = 'l'
		}
		r2, w2 := lower(i + 1 + w1)
		if w2 > 0 && r2 == want {
			return 1 + w1 + w2
		}
	}
	return 0
}
