package server

import (
	"encoding/json"
)

// Prompt is the "prompt" field of a completion request: a string, a list of
// strings, a list of token ids, or a list of token-id lists. After decoding,
// exactly one of Texts or IDs is non-empty; each element is one prompt.
type Prompt struct {
	Texts []string
	IDs   [][]int32
}

// Len returns the number of prompts.
func (p Prompt) Len() int { return len(p.Texts) + len(p.IDs) }

// UnmarshalJSON accepts the four shapes OpenAI allows.
func (p *Prompt) UnmarshalJSON(b []byte) error {
	*p = Prompt{}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		p.Texts = []string{s}
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return errBadType("prompt", "a string, a list of strings or a list of token ids")
	}
	if len(raw) == 0 {
		return errInvalid("prompt", "must not be empty")
	}
	var ids []int32
	if err := json.Unmarshal(b, &ids); err == nil {
		p.IDs = [][]int32{ids}
		return nil
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err == nil {
		p.Texts = texts
		return nil
	}
	var lists [][]int32
	if err := json.Unmarshal(b, &lists); err == nil {
		p.IDs = lists
		return nil
	}
	return errBadType("prompt", "a string, a list of strings or a list of token ids")
}

// Stop is the "stop" field: a string or a list of strings.
type Stop []string

// UnmarshalJSON accepts a string, a list of strings or null.
func (s *Stop) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Stop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errBadType("stop", "a string or a list of strings")
	}
	*s = many
	return nil
}

// StreamOptions are the "stream_options" of a streaming request.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// SamplingFields are the parameters shared by completions and chat
// completions. Pointers distinguish "absent" from zero.
type SamplingFields struct {
	Model               string         `json:"model"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	TopK                *int           `json:"top_k"`
	MinP                *float64       `json:"min_p"`
	PresencePenalty     *float64       `json:"presence_penalty"`
	FrequencyPenalty    *float64       `json:"frequency_penalty"`
	RepetitionPenalty   *float64       `json:"repetition_penalty"`
	Seed                *int64         `json:"seed"`
	Stop                Stop           `json:"stop"`
	StopTokenIDs        []int32        `json:"stop_token_ids"`
	IgnoreEOS           bool           `json:"ignore_eos"`
	N                   *int           `json:"n"`
	Stream              bool           `json:"stream"`
	StreamOptions       *StreamOptions `json:"stream_options"`
	ReturnTokenIDs      bool           `json:"return_token_ids"`
	User                string         `json:"user"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	SamplingFields
	Prompt *Prompt `json:"prompt"`
	// Logprobs is the number of top alternatives to return per token
	// (legacy completions API: an integer, 0..20).
	Logprobs *int `json:"logprobs"`
	Echo     bool `json:"echo"`
}

// ChatMessage is one message of a chat conversation. Content may be a
// string or a list of text parts; it is flattened to text on decode.
type ChatMessage struct {
	Role    string      `json:"role"`
	Content ChatContent `json:"content"`
	Name    string      `json:"name,omitempty"`
}

// ChatContent is message content flattened to text.
type ChatContent string

// UnmarshalJSON accepts a string, null, or a list of {"type":"text","text":...} parts.
func (c *ChatContent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = ChatContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errBadType("messages[].content", "a string or a list of text parts")
	}
	var out []byte
	for _, p := range parts {
		if p.Type != "text" {
			return errInvalid("messages[].content", "only text parts are supported, got type "+quote(p.Type))
		}
		out = append(out, p.Text...)
	}
	*c = ChatContent(out)
	return nil
}

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	SamplingFields
	Messages    []ChatMessage `json:"messages"`
	Logprobs    bool          `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
	// AddGenerationPrompt defaults to true (vLLM's extension).
	AddGenerationPrompt *bool `json:"add_generation_prompt"`
}

// Usage counts tokens of one response.
type Usage struct {
	PromptTokens        int                  `json:"prompt_tokens"`
	CompletionTokens    int                  `json:"completion_tokens"`
	TotalTokens         int                  `json:"total_tokens"`
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// PromptTokensDetails reports prompt tokens served from the prefix cache.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// CompletionLogprobs is the legacy completions logprobs object.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// CompletionChoice is one choice of a completion response or chunk.
type CompletionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
	TokenIDs     []int32             `json:"token_ids,omitempty"`
}

// CompletionResponse is the body of a /v1/completions response (and, with
// Object "text_completion", of each streamed chunk).
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// ChatLogprob is one token's logprob entry in a chat response.
type ChatLogprob struct {
	Token       string        `json:"token"`
	Logprob     float32       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []ChatLogprob `json:"top_logprobs,omitempty"`
}

// ChatLogprobs is the logprobs object of a chat choice.
type ChatLogprobs struct {
	Content []ChatLogprob `json:"content"`
}

// ChatResponseMessage is the assistant message of a choice or the delta of a chunk.
type ChatResponseMessage struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// ChatChoice is one choice of a chat completion response or chunk.
type ChatChoice struct {
	Index        int                  `json:"index"`
	Message      *ChatResponseMessage `json:"message,omitempty"`
	Delta        *ChatResponseMessage `json:"delta,omitempty"`
	Logprobs     *ChatLogprobs        `json:"logprobs"`
	FinishReason *string              `json:"finish_reason"`
	TokenIDs     []int32              `json:"token_ids,omitempty"`
}

// ChatResponse is the body of a /v1/chat/completions response, or of one
// chunk (Object "chat.completion.chunk").
type ChatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ModelCard is one entry of GET /v1/models.
type ModelCard struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	MaxModelLen int    `json:"max_model_len"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string      `json:"object"`
	Data   []ModelCard `json:"data"`
}
