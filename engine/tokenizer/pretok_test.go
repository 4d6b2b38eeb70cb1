package tokenizer

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tokamak-ai/tokamak/bench/tokenizer/corpus"
)

func TestSplitWordsFollowsRegexAlternation(t *testing.T) {
	cases := []struct {
		pattern wordPattern
		in      string
		want    []string
	}{
		{patternLlama3, "Hello, world!", []string{"Hello", ",", " world", "!"}},
		{patternLlama3, "  leading", []string{" ", " leading"}},
		{patternLlama3, "trailing  ", []string{"trailing", "  "}},
		{patternLlama3, "a\n\n\nb", []string{"a", "\n\n\n", "b"}},
		{patternLlama3, "x \n y", []string{"x", " \n", " y"}},
		{patternLlama3, "I'm they'LL 'sure", []string{"I", "'m", " they", "'LL", " '", "sure"}},
		{patternLlama3, "1234567", []string{"123", "456", "7"}},
		{patternLlama3, " 42", []string{" ", "42"}},
		{patternLlama3, "(int) {x}", []string{"(int", ")", " {", "x", "}"}},
		{patternLlama3, "ok!!\n\nnext", []string{"ok", "!!\n\n", "next"}},
		{patternLlama3, "\tand", []string{"\tand"}},
		{patternLlama3, "a\u00a0b", []string{"a", "\u00a0b"}},
		{patternQwen, "1234", []string{"1", "2", "3", "4"}},
		{patternGPT2, "Hello  world's 42x", []string{"Hello", " ", " world", "'s", " 42", "x"}},
		{patternGPT2, "a'S", []string{"a", "'", "S"}},
	}
	for _, c := range cases {
		var got []string
		splitWords(c.in, c.pattern, func(w string) { got = append(got, w) })
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitWords(%q, %d) = %q, want %q", c.in, c.pattern, got, c.want)
		}
		if strings.Join(got, "") != c.in {
			t.Errorf("splitWords(%q) pieces do not concatenate to the input", c.in)
		}
	}
}

func TestHeapMergeEqualsNaiveMerge(t *testing.T) {
	toks, _ := fixtures(t)
	for _, n := range refNames {
		tk := toks[n]
		for _, text := range []string{
			strings.Repeat("a", 300),
			strings.Repeat("the quick brown fox ", 20),
			strings.Repeat("ab", 150) + strings.Repeat("日本", 40),
		} {
			w := tk.normalize(text)
			if tk.byteLevel == nil {
				w = tk.normalize(text)
			}
			naive := tk.model.applyNaive(tk.initialSymbols(w))
			viaHeap := tk.model.applyHeap(tk.initialSymbols(w))
			if !equalIDs(naive, viaHeap) {
				t.Errorf("%s: heap merge differs from naive on %q:\n heap %v\nnaive %v", n, text[:20], viaHeap, naive)
			}
		}
	}
}

// TestMetaspaceWordsAreExact checks that cutting SentencePiece-style text
// into words at "▁" runs gives the ids of merging the whole text at once.
func TestMetaspaceWordsAreExact(t *testing.T) {
	toks, _ := fixtures(t)
	tk := toks["llama2"]
	if !tk.metaspaceWords {
		t.Fatal("llama2 should qualify for metaspace word cutting")
	}
	text := corpus.Generate(16 << 10)
	split, err := tk.Encode(text, false)
	if err != nil {
		t.Fatal(err)
	}
	tk.metaspaceWords = false
	defer func() { tk.metaspaceWords = true }()
	whole, err := tk.Encode(text, false)
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(split, whole) {
		t.Errorf("cut at ▁ runs: %d ids; whole-text merge: %d ids", len(split), len(whole))
	}
}
