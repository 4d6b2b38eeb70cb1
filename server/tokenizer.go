package server

import (
	"github.com/tokamak-ai/tokamak/engine/tokenizer"
)

// hfTokenizer adapts *tokenizer.Tokenizer to Tokenizer.
type hfTokenizer struct{ t *tokenizer.Tokenizer }

// WrapTokenizer adapts a loaded Hugging Face tokenizer to the server's
// Tokenizer interface; nil gives nil (a model served by token ids).
func WrapTokenizer(t *tokenizer.Tokenizer) Tokenizer {
	if t == nil {
		return nil
	}
	return hfTokenizer{t}
}

func (h hfTokenizer) Encode(text string, addSpecial bool) ([]int32, error) {
	return h.t.Encode(text, addSpecial)
}

func (h hfTokenizer) Decode(ids []int32) (string, error) { return h.t.Decode(ids), nil }

func (h hfTokenizer) HasChatTemplate() bool { return h.t.HasChatTemplate() }

func (h hfTokenizer) ApplyChatTemplate(messages []ChatMessage, addGenerationPrompt bool) (string, error) {
	msgs := make([]tokenizer.Message, len(messages))
	for i, m := range messages {
		msg := tokenizer.Message{"role": m.Role, "content": string(m.Content)}
		if m.Name != "" {
			msg["name"] = m.Name
		}
		msgs[i] = msg
	}
	return h.t.ApplyChatTemplate(msgs, tokenizer.ChatOptions{AddGenerationPrompt: addGenerationPrompt})
}
