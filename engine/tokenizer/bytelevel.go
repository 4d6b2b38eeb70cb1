package tokenizer

import "unicode/utf8"

// byteLevel holds GPT-2's reversible byte-to-rune table: printable bytes map
// to themselves and the rest to code points from U+0100 upward, so that every
// byte string has a printable, whitespace-free spelling in the vocabulary.
type byteLevel struct {
	byteToRune [256]rune
	runeToByte map[rune]byte
}

func newByteLevel() *byteLevel {
	bl := &byteLevel{runeToByte: make(map[rune]byte, 256)}
	next := rune(256)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = next
			next++
		}
		bl.byteToRune[b] = r
		bl.runeToByte[r] = byte(b)
	}
	return bl
}

// encode spells raw bytes in the byte-level alphabet.
func (bl *byteLevel) encode(raw string) string {
	buf := make([]byte, 0, len(raw)*2)
	for i := 0; i < len(raw); i++ {
		buf = utf8.AppendRune(buf, bl.byteToRune[raw[i]])
	}
	return string(buf)
}

// decode turns a byte-level token back into raw bytes; ok is false when the
// token holds a rune outside the alphabet (added tokens such as "<|eot_id|>"
// are then used verbatim, as tokenizers does).
func (bl *byteLevel) decode(tok string) (raw []byte, ok bool) {
	raw = make([]byte, 0, len(tok))
	for _, r := range tok {
		b, found := bl.runeToByte[r]
		if !found {
			return nil, false
		}
		raw = append(raw, b)
	}
	return raw, true
}
