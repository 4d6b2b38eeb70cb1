package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyBPE is a minimal byte-level tokenizer.json body with a placeholder
// for the model section, used to build malformed variants.
func tinyByteLevel(model string) string {
	return `{"added_tokens": [], "normalizer": null,
"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
"post_processor": null, "decoder": {"type": "ByteLevel"}, "model": ` + model + `}`
}

func writeTokenizer(t *testing.T, tokJSON, cfgJSON string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tokJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfgJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfgJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadRejectsBadFiles(t *testing.T) {
	cases := []struct {
		name        string
		tokJSON     string
		cfgJSON     string
		wantErr     string
		unsupported bool
	}{
		{name: "malformed JSON", tokJSON: `{"model": {"type": "BPE",`, wantErr: "tokenizer.json"},
		{name: "not an object", tokJSON: `[1, 2]`, wantErr: "tokenizer.json"},
		{name: "unigram", tokJSON: `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`, wantErr: `model type "Unigram": supported is BPE`, unsupported: true},
		{name: "wordpiece", tokJSON: `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`, wantErr: `model type "WordPiece": supported is BPE`, unsupported: true},
		{name: "wordlevel", tokJSON: `{"model": {"type": "WordLevel", "vocab": {"a": 0}}}`, wantErr: `model type "WordLevel"`, unsupported: true},
		{name: "merge to missing token", tokJSON: `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}`, wantErr: `merge 0 ("a", "b") refers to a token missing from the vocab`},
		{name: "merge from missing token", tokJSON: `{"model": {"type": "BPE", "vocab": {"a": 0, "ac": 1}, "merges": [["a", "c"]]}}`, wantErr: `merge 0 ("a", "c") refers to a token missing`},
		{name: "merge without space", tokJSON: `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}}`, wantErr: `merge 0 "ab"`},
		{name: "empty vocab", tokJSON: `{"model": {"type": "BPE", "vocab": {}, "merges": []}}`, wantErr: "empty vocab"},
		{name: "byte-level vocab without bytes", tokJSON: tinyByteLevel(`{"type": "BPE", "vocab": {"a": 0}, "merges": []}`), wantErr: "lacks the token for byte 0x00"},
		{name: "unknown normalizer", tokJSON: `{"normalizer": {"type": "BertNormalizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, wantErr: `normalizer "BertNormalizer": supported are NFC`, unsupported: true},
		{name: "unknown pre-tokenizer", tokJSON: `{"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, wantErr: `pre-tokenizer "Whitespace": supported are`, unsupported: true},
		{name: "null pre-tokenizer in a Sequence", tokJSON: `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [null]}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, wantErr: "pre-tokenizer Sequence holds a null entry"},
		{name: "unknown split regex", tokJSON: `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, wantErr: `supported are the GPT-2, Llama 3 and Qwen2 patterns`, unsupported: true},
		{name: "unknown decoder", tokJSON: `{"decoder": {"type": "WordPiece"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, wantErr: `decoder "WordPiece": supported are`, unsupported: true},
		{name: "unk token missing", tokJSON: `{"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}, "merges": []}}`, wantErr: `unk_token "<unk>" is not in the vocab`},
		{name: "bad config", tokJSON: `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, cfgJSON: `{"chat_template": 3`, wantErr: "tokenizer_config.json"},
		{name: "bad chat_template type", tokJSON: `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, cfgJSON: `{"chat_template": 3}`, wantErr: "chat_template: want a string or a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTokenizer(t, c.tokJSON, c.cfgJSON))
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q does not contain %q", err, c.wantErr)
			}
			if c.unsupported != errors.Is(err, ErrUnsupported) {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", !c.unsupported, c.unsupported)
			}
		})
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("Load(missing) = %v, want an error naming tokenizer.json", err)
	}
}

func TestEncodeRejectsInvalidUTF8(t *testing.T) {
	toks, _ := fixtures(t)
	if _, err := toks["llama3"].Encode("ok \xff bad", false); err == nil {
		t.Error("Encode accepted invalid UTF-8")
	}
}
