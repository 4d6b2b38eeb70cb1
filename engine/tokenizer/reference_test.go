package tokenizer

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

type encodeCase struct {
	Text    string  `json:"text"`
	IDs     []int32 `json:"ids"`
	Decoded string  `json:"decoded"`
}

type chatCase struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
	Text                string    `json:"text"`
}

type reference map[string]struct {
	Encode []encodeCase `json:"encode"`
	Chat   []chatCase   `json:"chat"`
}

var (
	loadOnce sync.Once
	loaded   map[string]*Tokenizer
	loadErr  error
	ref      reference
)

var refNames = []string{"llama2", "llama3", "qwen3"}

// fixtures loads the three reference tokenizers once per test binary.
func fixtures(t testing.TB) (map[string]*Tokenizer, reference) {
	t.Helper()
	dir := shareddata.Path(t, "tokenizers")
	loadOnce.Do(func() {
		b, err := os.ReadFile(dir + "/reference.json")
		if err != nil {
			loadErr = err
			return
		}
		if err := json.Unmarshal(b, &ref); err != nil {
			loadErr = err
			return
		}
		loaded = map[string]*Tokenizer{}
		for _, n := range refNames {
			tk, err := Load(dir + "/" + n)
			if err != nil {
				loadErr = err
				return
			}
			loaded[n] = tk
		}
	})
	if loadErr != nil {
		t.Fatalf("load reference tokenizers: %v", loadErr)
	}
	return loaded, ref
}

func TestEncodeMatchesReference(t *testing.T) {
	toks, ref := fixtures(t)
	for _, n := range refNames {
		for _, c := range ref[n].Encode {
			got, err := toks[n].Encode(c.Text, false)
			if err != nil {
				t.Errorf("%s: Encode(%q): %v", n, c.Text, err)
				continue
			}
			if !equalIDs(got, c.IDs) {
				t.Errorf("%s: Encode(%q)\n got %v\nwant %v", n, c.Text, got, c.IDs)
			}
		}
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	toks, ref := fixtures(t)
	for _, n := range refNames {
		for _, c := range ref[n].Encode {
			if got := toks[n].Decode(c.IDs); got != c.Decoded {
				t.Errorf("%s: Decode(%v) = %q, want %q", n, c.IDs, got, c.Decoded)
			}
		}
	}
}

func TestStreamDecodeConcatenatesToDecode(t *testing.T) {
	toks, ref := fixtures(t)
	for _, n := range refNames {
		for _, c := range ref[n].Encode {
			d := toks[n].NewStreamDecoder()
			var sb strings.Builder
			for _, id := range c.IDs {
				piece := d.Add(id)
				if !utf8.ValidString(piece) {
					t.Errorf("%s: %q: piece %q is not valid UTF-8", n, c.Text, piece)
				}
				sb.WriteString(piece)
			}
			if rest := d.Flush(); rest != "" {
				t.Errorf("%s: %q: %q left after the last id", n, c.Text, rest)
			}
			if sb.String() != c.Decoded {
				t.Errorf("%s: streamed %q, want %q", n, sb.String(), c.Decoded)
			}
		}
	}
}

func TestChatTemplateMatchesReference(t *testing.T) {
	toks, ref := fixtures(t)
	for _, n := range refNames {
		for i, c := range ref[n].Chat {
			got, err := toks[n].ApplyChatTemplate(c.Messages, ChatOptions{AddGenerationPrompt: c.AddGenerationPrompt})
			if err != nil {
				t.Errorf("%s chat %d: %v", n, i, err)
				continue
			}
			if got != c.Text {
				t.Errorf("%s chat %d:\n got %q\nwant %q", n, i, got, c.Text)
			}
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	toks, _ := fixtures(t)
	cases := []struct {
		name     string
		bos      int32
		hasBOS   bool
		eos      []int32
		vocab    int
		template bool
		withBOS  []int32 // Encode("hi", true) prefix
	}{
		{"llama2", 1, true, []int32{2}, 32000, false, []int32{1}},
		{"llama3", 128000, true, []int32{128001}, 128256, true, nil},
		{"qwen3", 0, false, []int32{151645}, 151669, true, nil},
	}
	for _, c := range cases {
		tk := toks[c.name]
		bos, ok := tk.BOS()
		if ok != c.hasBOS || ok && bos != c.bos {
			t.Errorf("%s: BOS() = %d, %v; want %d, %v", c.name, bos, ok, c.bos, c.hasBOS)
		}
		if !equalIDs(tk.EOS(), c.eos) {
			t.Errorf("%s: EOS() = %v, want %v", c.name, tk.EOS(), c.eos)
		}
		if tk.VocabSize() != c.vocab {
			t.Errorf("%s: VocabSize() = %d, want %d", c.name, tk.VocabSize(), c.vocab)
		}
		if tk.HasChatTemplate() != c.template {
			t.Errorf("%s: HasChatTemplate() = %v", c.name, tk.HasChatTemplate())
		}
		plain, _ := tk.Encode("hi", false)
		with, _ := tk.Encode("hi", true)
		if !equalIDs(with, append(append([]int32{}, c.withBOS...), plain...)) {
			t.Errorf("%s: Encode(hi, true) = %v, plain %v", c.name, with, plain)
		}
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
