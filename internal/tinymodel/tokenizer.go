package tinymodel

// byteToRune is the byte-level BPE alphabet: printable bytes stand for
// themselves, the rest are shifted above U+0100 in byte order, so every
// byte has a visible single-rune token.
func byteToRune() [numBytes]rune {
	var m [numBytes]rune
	next := rune(256)
	for b := 0; b < numBytes; b++ {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE && b <= 0xFF:
			m[b] = rune(b)
		default:
			m[b] = next
			next++
		}
	}
	return m
}

// The same split as Qwen2/3's byte-level pre-tokenizer.
const splitPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

const chatTemplate = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

var specials = []struct {
	id      int
	content string
}{{tokEndOfText, "<|endoftext|>"}, {tokImStart, "<|im_start|>"}, {tokImEnd, "<|im_end|>"}}

func tokenizerJSON() map[string]any {
	vocab := map[string]int{}
	for b, r := range byteToRune() {
		vocab[string(r)] = b
	}
	var added []map[string]any
	for _, s := range specials {
		vocab[s.content] = s.id
		added = append(added, map[string]any{"id": s.id, "content": s.content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	return map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": splitPattern}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []string{},
		},
	}
}

func tokenizerConfig() map[string]any {
	return map[string]any{
		"add_bos_token":                false,
		"bos_token":                    nil,
		"eos_token":                    "<|im_end|>",
		"pad_token":                    "<|endoftext|>",
		"chat_template":                chatTemplate,
		"model_max_length":             maxContext,
		"tokenizer_class":              "Qwen2Tokenizer",
		"clean_up_tokenization_spaces": false,
	}
}
