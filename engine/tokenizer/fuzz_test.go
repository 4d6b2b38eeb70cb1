package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeDecode checks that encoding arbitrary text never panics and, for
// the byte-level tokenizers, that decode(encode(s)) == s (after the
// tokenizer's normalizer, NFC for Qwen); for every
// tokenizer the streamed decode must equal the full one.
func FuzzEncodeDecode(f *testing.F) {
	toks, ref := fixtures(f)
	for _, n := range refNames {
		for _, c := range ref[n].Encode {
			f.Add(c.Text)
		}
	}
	f.Add("<|im_start|>user\nhi<|im_end|><|begin_of_text|>")
	f.Add("\xff\xfe invalid")
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range refNames {
			tk := toks[n]
			ids, err := tk.Encode(s, true)
			if !utf8.ValidString(s) {
				if err == nil {
					t.Fatalf("%s: Encode accepted invalid UTF-8 %q", n, s)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: Encode(%q): %v", n, s, err)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tk.VocabSize() {
					t.Fatalf("%s: Encode(%q) gave id %d outside the vocab", n, s, id)
				}
			}
			plain, _ := tk.Encode(s, false)
			full := tk.Decode(plain)
			// Byte-level BPE is lossless up to the normalizer (Qwen's NFC).
			if want := tk.normalize(s); tk.byteLevel != nil && full != want {
				t.Fatalf("%s: Decode(Encode(%q)) = %q, want %q", n, s, full, want)
			}
			d := tk.NewStreamDecoder()
			var sb strings.Builder
			for _, id := range plain {
				sb.WriteString(d.Add(id))
			}
			sb.WriteString(d.Flush())
			if sb.String() != full {
				t.Fatalf("%s: streamed %q, full decode %q", n, sb.String(), full)
			}
		}
	})
}
