package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStreamDecodeRandomIDs feeds random ids (which often spell broken
// UTF-8 through byte tokens) and checks that every piece is valid UTF-8 and
// that the pieces plus Flush concatenate to the full decode (for byte
// fallback, when that decode has no U+FFFD).
func TestStreamDecodeRandomIDs(t *testing.T) {
	toks, _ := fixtures(t)
	r := rand.New(rand.NewPCG(7, 7))
	for _, n := range refNames {
		tk := toks[n]
		for trial := 0; trial < 200; trial++ {
			ids := make([]int32, 1+r.IntN(40))
			for i := range ids {
				if r.IntN(2) == 0 {
					ids[i] = int32(r.IntN(300)) // byte tokens and short pieces
				} else {
					ids[i] = int32(r.IntN(tk.VocabSize()))
				}
			}
			d := tk.NewStreamDecoder()
			var sb strings.Builder
			for _, id := range ids {
				p := d.Add(id)
				if !utf8.ValidString(p) {
					t.Fatalf("%s: piece %q is not valid UTF-8", n, p)
				}
				sb.WriteString(p)
			}
			sb.WriteString(d.Flush())
			// With byte fallback, a valid <0xXX> run turns into U+FFFDs when
			// an invalid byte joins it, which a stream cannot take back;
			// byte-level decoding has no such case.
			want := tk.Decode(ids)
			if tk.byteLevel == nil && strings.ContainsRune(want, utf8.RuneError) {
				continue
			}
			if sb.String() != want {
				t.Fatalf("%s: ids %v: streamed %q, want %q", n, ids, sb.String(), want)
			}
		}
	}
}
