// Package tokenizer encodes text to token ids and back exactly as Hugging
// Face tokenizers does for the BPE tokenizers of Llama-family checkpoints
// (byte-level BPE of Llama 3 and Qwen2/3; SentencePiece-style BPE with byte
// fallback of Llama 2 and Mistral), decodes incrementally for streaming, and
// renders chat templates from tokenizer_config.json.
//
// A *Tokenizer is immutable after Load and safe for concurrent use.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a loaded tokenizer.json plus its tokenizer_config.json.
type Tokenizer struct {
	model        bpe
	vocab        map[string]int32 // model vocabulary, token spelling → id
	rawVocab     map[string]int32 // byte-level: raw bytes → id (for ignore_merges)
	idToToken    []string         // every id, model and added, → spelling
	special      []bool           // per id: an added token marked special
	byteLevel    *byteLevel       // non-nil for byte-level models
	byteIDs      [256]int32       // byte-level: byte → id; else <0xXX> → id or -1
	runeIDs      map[rune]int32   // non-byte-level: single-rune tokens
	unkID        int32            // -1 when the model has no unk token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool

	normalizers []normalizeStep
	pattern     *wordPattern // nil: a whole segment is one word
	prefixSpace bool         // ByteLevel add_prefix_space
	// metaspaceWords: no token has "▁" after another rune, so no merge can
	// cross the start of a "▁" run and a segment may be cut there into words
	// (exact, and it lets SentencePiece-style models use the word cache).
	metaspaceWords bool

	rawAdded  *addedMatcher // added tokens matched before normalization
	normAdded *addedMatcher // added tokens matched after normalization
	prefixIDs []int32       // added by Encode(..., addSpecial=true) before the text
	suffixIDs []int32       // ... and after it

	decoders []decodeStep

	bos          int32
	hasBOS       bool
	eos          []int32
	bosToken     string
	eosToken     string
	extraTokens  map[string]string // pad_token, unk_token for templates
	templates    map[string]string // chat templates by name ("default" for a plain string)
	templateFrom string            // file the templates came from, for errors
	compiled     sync.Map          // template name → chatTemplate
}

// ErrUnsupported is wrapped by load errors for tokenizer features this
// package does not implement; the message names what is supported.
var ErrUnsupported = errors.New("unsupported tokenizer")

// Load reads tokenizer.json and tokenizer_config.json (and, if present,
// generation_config.json for EOS ids) from a model folder.
func Load(dir string) (*Tokenizer, error) {
	tokPath := filepath.Join(dir, "tokenizer.json")
	tokJSON, err := os.ReadFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	cfgJSON, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := parse(tokJSON, cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
	}
	t.templateFrom = cfgPath
	if gen, err := os.ReadFile(filepath.Join(dir, "generation_config.json")); err == nil {
		var g generationConfigJSON
		if err := json.Unmarshal(gen, &g); err != nil {
			return nil, fmt.Errorf("load tokenizer %s: generation_config.json: %w", dir, err)
		}
		t.eos = appendUnique(intOrList(g.EOSTokenID), t.eos...)
	}
	return t, nil
}

func appendUnique(ids []int32, more ...int32) []int32 {
	for _, id := range more {
		dup := false
		for _, have := range ids {
			dup = dup || have == id
		}
		if !dup {
			ids = append(ids, id)
		}
	}
	return ids
}

// Encode tokenizes text. Added and special tokens spelled in the text are
// matched as tokens, as tokenizers does by default. With addSpecial the
// post-processor's special tokens (e.g. Llama 2's BOS) are added, or, when
// tokenizer.json has none, those tokenizer_config.json asks for
// (add_bos_token, add_eos_token). text must be valid UTF-8.
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, errors.New("encode: text is not valid UTF-8")
	}
	ids := make([]int32, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, t.prefixIDs...)
	}
	t.rawAdded.split(text, func(seg string, tok int32) {
		if tok >= 0 {
			ids = append(ids, tok)
			return
		}
		seg = t.normalize(seg)
		t.normAdded.split(seg, func(seg string, tok int32) {
			if tok >= 0 {
				ids = append(ids, tok)
				return
			}
			ids = t.encodeSegment(seg, ids)
		})
	})
	if addSpecial {
		ids = append(ids, t.suffixIDs...)
	}
	return ids, nil
}

// encodeSegment pre-tokenizes one normalized stretch of text between added
// tokens and appends the BPE ids of each word.
func (t *Tokenizer) encodeSegment(seg string, ids []int32) []int32 {
	if seg == "" {
		return ids
	}
	if t.prefixSpace && seg[0] != ' ' {
		seg = " " + seg
	}
	if t.pattern == nil {
		if t.metaspaceWords {
			splitMetaspace(seg, func(w string) { ids = t.encodeWord(w, ids) })
			return ids
		}
		return t.encodeWord(seg, ids)
	}
	splitWords(seg, *t.pattern, func(w string) { ids = t.encodeWord(w, ids) })
	return ids
}

// encodeWord appends the ids of one pre-token.
func (t *Tokenizer) encodeWord(w string, ids []int32) []int32 {
	if cached, ok := t.model.cached(w); ok {
		return append(ids, cached...)
	}
	if t.ignoreMerges {
		vocab := t.vocab
		if t.byteLevel != nil {
			vocab = t.rawVocab
		}
		if id, ok := vocab[w]; ok {
			t.model.store(w, []int32{id})
			return append(ids, id)
		}
	}
	syms := t.initialSymbols(w)
	syms = t.model.apply(syms)
	t.model.store(w, append([]int32(nil), syms...))
	return append(ids, syms...)
}

// initialSymbols splits a word into the model's base symbols: bytes for
// byte-level models; runes otherwise, with unknown runes spelled as <0xXX>
// byte tokens (byte_fallback) or the unk token.
func (t *Tokenizer) initialSymbols(w string) []int32 {
	syms := make([]int32, 0, len(w))
	if t.byteLevel != nil {
		for i := 0; i < len(w); i++ {
			syms = append(syms, t.byteIDs[w[i]])
		}
		return syms
	}
	for i, r := range w {
		if id, ok := t.runeIDs[r]; ok {
			syms = append(syms, id)
			continue
		}
		n := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, n = utf8.DecodeRuneInString(w[i:])
		}
		if t.byteFallback && t.hasByteTokens(w[i:i+n]) {
			for j := i; j < i+n; j++ {
				syms = append(syms, t.byteIDs[w[j]])
			}
			continue
		}
		if t.unkID >= 0 {
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == t.unkID {
				continue
			}
			syms = append(syms, t.unkID)
		}
	}
	return syms
}

func (t *Tokenizer) hasByteTokens(b string) bool {
	for i := 0; i < len(b); i++ {
		if t.byteIDs[b[i]] < 0 {
			return false
		}
	}
	return true
}

// normalizeStep is one normalizer of the Sequence, applied in order.
type normalizeStep func(string) string

func (t *Tokenizer) normalize(s string) string {
	for _, f := range t.normalizers {
		s = f(s)
	}
	return s
}

func nfc(s string) string  { return norm.NFC.String(s) }
func nfkc(s string) string { return norm.NFKC.String(s) }
func nfd(s string) string  { return norm.NFD.String(s) }
func nfkd(s string) string { return norm.NFKD.String(s) }

// Decode turns ids into text, special tokens included, exactly as
// tokenizers' decode(ids, skip_special_tokens=False). Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.idToToken) && t.idToToken[id] != "" {
			toks = append(toks, t.idToToken[id])
		}
	}
	return t.decodeTokens(toks)
}

// Token returns the vocabulary spelling of id (byte-level spelling for
// byte-level models), and false for an id outside the vocabulary.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.idToToken) || t.idToToken[id] == "" {
		return "", false
	}
	return t.idToToken[id], true
}

// IsSpecial reports whether id is an added token marked special (BOS, EOS,
// chat markers), which callers may hide from users.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// BOS returns the beginning-of-sequence id from tokenizer_config.json.
func (t *Tokenizer) BOS() (int32, bool) { return t.bos, t.hasBOS }

// EOS returns the ids that end generation: generation_config.json's
// eos_token_id (number or list) first, then tokenizer_config.json's eos_token.
func (t *Tokenizer) EOS() []int32 { return append([]int32(nil), t.eos...) }

// VocabSize is one more than the largest id, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// HasChatTemplate reports whether tokenizer_config.json carries a chat template.
func (t *Tokenizer) HasChatTemplate() bool { return len(t.templates) > 0 }
