package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// parse builds a Tokenizer from the bytes of tokenizer.json and (optionally,
// nil when absent) tokenizer_config.json.
func parse(tokJSON, cfgJSON []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(tokJSON, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t := &Tokenizer{unkID: -1, extraTokens: map[string]string{}}
	if err := t.setModel(&f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if err := t.setDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	if err := t.setAdded(f.AddedTokens); err != nil {
		return nil, fmt.Errorf("tokenizer.json: added_tokens: %w", err)
	}
	if err := t.setPostProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("tokenizer.json: post_processor: %w", err)
	}
	if cfgJSON != nil {
		if err := t.setConfig(cfgJSON); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	return t, nil
}

func (t *Tokenizer) setModel(f *fileJSON) error {
	var kind struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(f.Model, &kind); err != nil {
		return err
	}
	if kind.Type != "BPE" && !(kind.Type == "" && kind.Merges != nil) {
		return fmt.Errorf("%w: model type %q: supported is BPE (byte-level, or SentencePiece-style with byte_fallback)", ErrUnsupported, kind.Type)
	}
	var m modelJSON
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return err
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" ||
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return fmt.Errorf("%w: BPE continuing_subword_prefix/end_of_word_suffix are not supported", ErrUnsupported)
	}
	if len(m.Vocab) == 0 {
		return fmt.Errorf("empty vocab")
	}
	t.vocab = m.Vocab
	size := 0
	for tok, id := range m.Vocab {
		if id < 0 {
			return fmt.Errorf("token %q has negative id %d", tok, id)
		}
		size = max(size, int(id)+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		size = max(size, int(a.ID)+1)
	}
	if size > 1<<24 {
		return fmt.Errorf("vocab ids up to %d: implausibly large", size)
	}
	t.idToToken = make([]string, size)
	t.special = make([]bool, size)
	for tok, id := range m.Vocab {
		t.idToToken[id] = tok
	}
	t.fuseUnk, t.byteFallback, t.ignoreMerges = m.FuseUnk, m.ByteFallback, m.IgnoreMerges
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("unk_token %q is not in the vocab", *m.UnkToken)
		}
		t.unkID = id
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	t.model.merges = make(map[uint64]merge, len(merges))
	t.model.cache = make(map[string][]int32)
	for rank, mg := range merges {
		a, okA := m.Vocab[mg[0]]
		b, okB := m.Vocab[mg[1]]
		c, okC := m.Vocab[mg[0]+mg[1]]
		if !okA || !okB || !okC {
			return fmt.Errorf("merge %d (%q, %q) refers to a token missing from the vocab", rank, mg[0], mg[1])
		}
		key := pairKey(a, b)
		if _, dup := t.model.merges[key]; !dup {
			t.model.merges[key] = merge{rank: int32(rank), id: c}
		}
	}
	for i := range t.byteIDs {
		t.byteIDs[i] = -1
	}
	return nil
}

// setByteLevel switches the model to byte-level symbols; every byte must
// have its token.
func (t *Tokenizer) setByteLevel() error {
	if t.byteLevel != nil {
		return nil
	}
	t.byteLevel = newByteLevel()
	for b := 0; b < 256; b++ {
		id, ok := t.vocab[string(t.byteLevel.byteToRune[b])]
		if !ok {
			return fmt.Errorf("byte-level vocab lacks the token for byte 0x%02X", b)
		}
		t.byteIDs[b] = id
	}
	t.rawVocab = make(map[string]int32, len(t.vocab))
	for tok, id := range t.vocab {
		if raw, ok := t.byteLevel.decode(tok); ok {
			t.rawVocab[string(raw)] = id
		}
	}
	return nil
}

// setRunes prepares the non-byte-level symbols: single-rune tokens and
// the <0xXX> byte-fallback tokens.
func (t *Tokenizer) setRunes() {
	t.runeIDs = make(map[rune]int32)
	for tok, id := range t.vocab {
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && r != utf8.RuneError {
			t.runeIDs[r] = id
		}
	}
	for b := 0; b < 256; b++ {
		if id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteIDs[b] = id
		}
	}
	t.metaspaceWords = true
	for tok := range t.vocab {
		if strings.Contains(strings.TrimLeft(tok, metaspace), metaspace) {
			t.metaspaceWords = false
			break
		}
	}
}

// metaspace is SentencePiece's visible space, U+2581.
const metaspace = "\u2581"

// splitMetaspace cuts s before each run of U+2581 that follows another rune.
func splitMetaspace(s string, emit func(string)) {
	start := 0
	for i := 1; i < len(s); {
		j := strings.Index(s[i:], metaspace)
		if j < 0 {
			break
		}
		i += j
		if !strings.HasSuffix(s[:i], metaspace) {
			emit(s[start:i])
			start = i
		}
		i += len(metaspace)
	}
	emit(s[start:])
}

const supportedNormalizers = "NFC, NFD, NFKC, NFKD, Prepend, Replace (String pattern), Sequence"

func (t *Tokenizer) setNormalizer(c *componentJSON) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, sub := range c.Normalizers {
			if err := t.setNormalizer(sub); err != nil {
				return err
			}
		}
	case "NFC":
		t.normalizers = append(t.normalizers, nfc)
	case "NFKC":
		t.normalizers = append(t.normalizers, nfkc)
	case "NFD":
		t.normalizers = append(t.normalizers, nfd)
	case "NFKD":
		t.normalizers = append(t.normalizers, nfkd)
	case "Prepend":
		p := c.Prepend
		t.normalizers = append(t.normalizers, func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		})
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || c.Content == nil {
			return fmt.Errorf("%w: Replace normalizer needs a String pattern (Regex patterns are not supported)", ErrUnsupported)
		}
		old, repl := *c.Pattern.String, *c.Content
		t.normalizers = append(t.normalizers, func(s string) string { return strings.ReplaceAll(s, old, repl) })
	default:
		return fmt.Errorf("%w: normalizer %q: supported are %s", ErrUnsupported, c.Type, supportedNormalizers)
	}
	return nil
}

const supportedPreTokenizers = "none, ByteLevel, Split with the GPT-2/Llama 3/Qwen2 regex (Isolated), or a Sequence of Split then ByteLevel"

func (t *Tokenizer) setPreTokenizer(c *componentJSON) error {
	if c == nil {
		t.setRunes()
		return nil
	}
	steps := []*componentJSON{c}
	if c.Type == "Sequence" {
		steps = c.PreTokenizers
	}
	for _, s := range steps {
		if s == nil {
			return fmt.Errorf("pre-tokenizer Sequence holds a null entry")
		}
		switch s.Type {
		case "Split":
			if t.pattern != nil || s.Pattern == nil || s.Pattern.Regex == nil || s.Behavior != "Isolated" || s.Invert {
				return fmt.Errorf("%w: this Split pre-tokenizer: supported are %s", ErrUnsupported, supportedPreTokenizers)
			}
			p, ok := patternFor(*s.Pattern.Regex)
			if !ok {
				return fmt.Errorf("%w: Split regex %q: supported are the GPT-2, Llama 3 and Qwen2 patterns", ErrUnsupported, *s.Pattern.Regex)
			}
			t.pattern = &p
		case "ByteLevel":
			if err := t.setByteLevel(); err != nil {
				return err
			}
			t.prefixSpace = s.AddPrefixSpc
			if s.UseRegex == nil || *s.UseRegex {
				if t.pattern != nil {
					return fmt.Errorf("%w: ByteLevel use_regex after a Split", ErrUnsupported)
				}
				p := patternGPT2
				t.pattern = &p
			}
		default:
			return fmt.Errorf("%w: pre-tokenizer %q: supported are %s", ErrUnsupported, s.Type, supportedPreTokenizers)
		}
	}
	if t.byteLevel == nil {
		t.setRunes()
	}
	return nil
}

const supportedDecoders = "ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip, Sequence"

func (t *Tokenizer) setDecoder(c *componentJSON) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, sub := range c.Decoders {
			if err := t.setDecoder(sub); err != nil {
				return err
			}
		}
	case "ByteLevel":
		bl := t.byteLevel
		if bl == nil {
			bl = newByteLevel()
		}
		t.decoders = append(t.decoders, byteLevelDecoder(bl))
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || c.Content == nil {
			return fmt.Errorf("%w: Replace decoder needs a String pattern", ErrUnsupported)
		}
		t.decoders = append(t.decoders, replaceDecoder(*c.Pattern.String, *c.Content))
	case "ByteFallback":
		t.decoders = append(t.decoders, byteFallbackDecoder)
	case "Fuse":
		t.decoders = append(t.decoders, fuseDecoder)
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return fmt.Errorf("Strip decoder needs a one-character content")
		}
		t.decoders = append(t.decoders, stripDecoder([]rune(*c.Content)[0], c.Start, c.Stop))
	default:
		return fmt.Errorf("%w: decoder %q: supported are %s", ErrUnsupported, c.Type, supportedDecoders)
	}
	return nil
}

func (t *Tokenizer) setAdded(added []addedTokenJSON) error {
	var raw, normed []addedToken
	for _, a := range added {
		if a.Content == "" {
			return fmt.Errorf("added token %d has empty content", a.ID)
		}
		t.idToToken[a.ID] = a.Content
		t.special[a.ID] = a.Special
		tok := addedToken{content: a.Content, id: a.ID, lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord}
		if a.Normalized && !a.Special {
			tok.content = t.normalize(a.Content)
			normed = append(normed, tok)
		} else {
			raw = append(raw, tok)
		}
	}
	t.rawAdded = newAddedMatcher(raw)
	t.normAdded = newAddedMatcher(normed)
	return nil
}

func (t *Tokenizer) setPostProcessor(c *componentJSON) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, sub := range c.Processors {
			if err := t.setPostProcessor(sub); err != nil {
				return err
			}
		}
	case "ByteLevel":
		// Only adjusts offsets; adds no tokens.
	case "TemplateProcessing":
		seen := false
		for _, p := range c.Single {
			switch {
			case p.Sequence != nil:
				seen = true
			case p.SpecialToken != nil:
				id, ok := t.tokenID(p.SpecialToken.ID)
				if !ok {
					return fmt.Errorf("TemplateProcessing special token %q is not in the vocab", p.SpecialToken.ID)
				}
				if seen {
					t.suffixIDs = append(t.suffixIDs, id)
				} else {
					t.prefixIDs = append(t.prefixIDs, id)
				}
			}
		}
		if t.prefixIDs == nil {
			t.prefixIDs = []int32{}
		}
	default:
		return fmt.Errorf("%w: post_processor %q: supported are TemplateProcessing, ByteLevel, Sequence", ErrUnsupported, c.Type)
	}
	return nil
}

// tokenID finds the id of a token spelling, added tokens included.
func (t *Tokenizer) tokenID(tok string) (int32, bool) {
	if id, ok := t.vocab[tok]; ok {
		return id, true
	}
	for id, s := range t.idToToken {
		if s == tok && s != "" {
			return int32(id), true
		}
	}
	return 0, false
}

func (t *Tokenizer) setConfig(cfgJSON []byte) error {
	var c configJSON
	if err := json.Unmarshal(cfgJSON, &c); err != nil {
		return err
	}
	t.bosToken, t.eosToken = tokenString(c.BOSToken), tokenString(c.EOSToken)
	if t.bosToken != "" {
		t.bos, t.hasBOS = t.tokenID(t.bosToken)
	}
	if t.eosToken != "" {
		if id, ok := t.tokenID(t.eosToken); ok {
			t.eos = appendUnique(t.eos, id)
		}
	}
	if s := tokenString(c.PadToken); s != "" {
		t.extraTokens["pad_token"] = s
	}
	if s := tokenString(c.UnkToken); s != "" {
		t.extraTokens["unk_token"] = s
	}
	// Without a post-processor that adds them, the config's flags decide.
	if t.prefixIDs == nil && t.suffixIDs == nil {
		if c.AddBOSToken != nil && *c.AddBOSToken && t.hasBOS {
			t.prefixIDs = []int32{t.bos}
		}
		if c.AddEOSToken != nil && *c.AddEOSToken && len(t.eos) > 0 {
			t.suffixIDs = []int32{t.eos[0]}
		}
	}
	return t.setTemplates(c.ChatTemplate)
}
