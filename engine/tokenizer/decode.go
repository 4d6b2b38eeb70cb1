package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeStep is one decoder of tokenizers' decode chain: it maps the token
// strings to new strings; the final strings are concatenated.
type decodeStep func([]string) []string

func (t *Tokenizer) decodeTokens(toks []string) string {
	for _, d := range t.decoders {
		toks = d(toks)
	}
	return strings.Join(toks, "")
}

// byteLevelDecoder maps byte-level spellings back to bytes (tokens with
// runes outside the alphabet, like most added tokens, are used verbatim)
// and replaces invalid UTF-8 as Rust's from_utf8_lossy does.
func byteLevelDecoder(bl *byteLevel) decodeStep {
	return func(toks []string) []string {
		var buf []byte
		for _, tok := range toks {
			if raw, ok := bl.decode(tok); ok {
				buf = append(buf, raw...)
			} else {
				buf = append(buf, tok...)
			}
		}
		return []string{lossyUTF8(buf)}
	}
}

func replaceDecoder(old, repl string) decodeStep {
	return func(toks []string) []string {
		for i, tok := range toks {
			toks[i] = strings.ReplaceAll(tok, old, repl)
		}
		return toks
	}
}

// byteFallbackDecoder turns runs of <0xXX> tokens into their bytes; a run
// that is not valid UTF-8 becomes one U+FFFD per byte.
func byteFallbackDecoder(toks []string) []string {
	out := make([]string, 0, len(toks))
	var pending []byte
	flush := func() {
		if pending == nil {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			out = append(out, strings.Repeat("\uFFFD", len(pending)))
		}
		pending = nil
	}
	for _, tok := range toks {
		if b, ok := byteToken(tok); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

// byteToken parses "<0xXX>".
func byteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(tok[3:5], 16, 8)
	return byte(v), err == nil
}

func fuseDecoder(toks []string) []string { return []string{strings.Join(toks, "")} }

// stripDecoder removes up to start leading and stop trailing c from each token.
func stripDecoder(c rune, start, stop int) decodeStep {
	return func(toks []string) []string {
		for i, tok := range toks {
			for n := 0; n < start; n++ {
				r, w := utf8.DecodeRuneInString(tok)
				if w == 0 || r != c {
					break
				}
				tok = tok[w:]
			}
			for n := 0; n < stop; n++ {
				r, w := utf8.DecodeLastRuneInString(tok)
				if w == 0 || r != c {
					break
				}
				tok = tok[:len(tok)-w]
			}
			toks[i] = tok
		}
		return toks
	}
}

// lossyUTF8 converts b to a string, replacing each maximal invalid
// subsequence with one U+FFFD (the rule of Rust's String::from_utf8_lossy
// and of the Unicode standard's "substitution of maximal subparts").
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			sb.Write(b[i : i+w])
			i += w
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart returns the length of the invalid prefix of b to replace:
// a lead byte and the continuation bytes that could still have completed it.
func maximalSubpart(b []byte) int {
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead == 0xE0:
		need, lo = 2, 0xA0
	case lead == 0xED:
		need, hi = 2, 0x9F
	case lead >= 0xE1 && lead <= 0xEF:
		need = 2
	case lead == 0xF0:
		need, lo = 3, 0x90
	case lead == 0xF4:
		need, hi = 3, 0x8F
	case lead >= 0xF1 && lead <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if c < lo || c > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}

// StreamDecoder turns a stream of ids into text pieces for streaming: the
// pieces concatenate to the full Decode of the ids, and each is valid UTF-8
// (text is held back while it ends in an incomplete character). It keeps a
// short window of recent ids so that leading-space rules of SentencePiece
// models apply as in a full decode. Not safe for concurrent use.
type StreamDecoder struct {
	t                    *Tokenizer
	ids                  []int32
	prefixOffset, readAt int
}

// NewStreamDecoder starts an incremental decode.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add feeds one id and returns the newly completed text, possibly "".
//
// The new text is the window's decode past the runes of its previous decode
// (the rule of vLLM and TGI). It equals the full decode's new text except
// where invalid UTF-8 changes meaning retroactively: with byte fallback a run
// of <0xXX> tokens that was valid becomes U+FFFD per byte once an invalid
// byte joins it; such text is not taken back.
func (d *StreamDecoder) Add(id int32) string {
	d.ids = append(d.ids, id)
	prefix := d.t.Decode(d.ids[d.prefixOffset:d.readAt])
	full := d.t.Decode(d.ids[d.prefixOffset:])
	if len(full) <= len(prefix) || strings.HasSuffix(full, "\uFFFD") {
		return ""
	}
	d.prefixOffset, d.readAt = d.readAt, len(d.ids)
	d.compact()
	return afterRunes(full, prefix)
}

// Flush returns any text still held back (an incomplete character at the
// end of the stream becomes U+FFFD, as in a full decode).
func (d *StreamDecoder) Flush() string {
	prefix := d.t.Decode(d.ids[d.prefixOffset:d.readAt])
	full := d.t.Decode(d.ids[d.prefixOffset:])
	d.prefixOffset, d.readAt = d.readAt, len(d.ids)
	return afterRunes(full, prefix)
}

// afterRunes returns full past its first RuneCount(prefix) runes ("" when
// full is not longer), or simply full past prefix when prefix is its start.
func afterRunes(full, prefix string) string {
	if strings.HasPrefix(full, prefix) {
		return full[len(prefix):]
	}
	n := utf8.RuneCountInString(prefix)
	for i := range full {
		if n == 0 {
			return full[i:]
		}
		n--
	}
	return ""
}

// compact drops ids that no window can reach again.
func (d *StreamDecoder) compact() {
	if d.prefixOffset > 64 {
		n := copy(d.ids, d.ids[d.prefixOffset:])
		d.ids = d.ids[:n]
		d.readAt -= d.prefixOffset
		d.prefixOffset = 0
	}
}
