package tokenizer

import (
	"testing"
)

// TestAddedTokenFlags checks lstrip, rstrip and single_word matching and
// leftmost-longest choice among overlapping added tokens.
func TestAddedTokenFlags(t *testing.T) {
	tokJSON := `{
"added_tokens": [
 {"id": 10, "content": "<x>", "lstrip": true, "rstrip": false, "single_word": false, "normalized": false, "special": true},
 {"id": 11, "content": "[y]", "lstrip": false, "rstrip": true, "single_word": false, "normalized": false, "special": false},
 {"id": 12, "content": "ab", "lstrip": false, "rstrip": false, "single_word": true, "normalized": false, "special": false},
 {"id": 13, "content": "<x><x>", "lstrip": false, "rstrip": false, "single_word": false, "normalized": false, "special": true}
],
"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, " ": 3, "<": 4, ">": 5, "x": 6, "[": 7, "]": 8, "y": 9}, "merges": []}}`
	tk, err := Load(writeTokenizer(t, tokJSON, ""))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want []int32
	}{
		{"a  <x>b", []int32{0, 10, 1}},                // lstrip eats the spaces before <x>
		{"a<x> b", []int32{0, 10, 3, 1}},              // but not after it
		{"[y]  a", []int32{11, 0}},                    // rstrip eats the spaces after [y]
		{"ab cab ab", []int32{12, 3, 2, 0, 1, 3, 12}}, // single_word: not inside "cab"
		{"<x><x>c", []int32{13, 2}},                   // longest match wins
	}
	for _, c := range cases {
		got, err := tk.Encode(c.in, false)
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if !tk.IsSpecial(10) || tk.IsSpecial(11) || tk.IsSpecial(0) {
		t.Error("IsSpecial does not follow the special flags")
	}
}
