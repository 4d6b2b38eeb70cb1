package engine

import "github.com/tokamak-ai/tokamak/engine/sample"

// Priority orders work: interactive requests run before batch requests.
type Priority int

// Priority classes.
const (
	Interactive Priority = iota
	BatchPriority
)

// Request is one generation request, already tokenized.
type Request struct {
	// PromptIDs are the prompt's token ids (BOS included if the model wants it).
	PromptIDs []int32
	// Params are the sampling parameters.
	Params sample.Params
	// MaxTokens caps the generated tokens (> 0).
	MaxTokens int
	// StopTokenIDs end the sequence when generated (in addition to EOS,
	// unless IgnoreEOS).
	StopTokenIDs []int32
	IgnoreEOS    bool
	// StopStrings end the sequence when its text contains one; the stop
	// string itself is not returned. Needs a tokenizer on the engine.
	StopStrings []string
	// N is the number of independent completions sharing the prompt (0 or 1: one).
	N int
	// Priority is the scheduling class.
	Priority Priority
}

// FinishReason says why a sequence ended: "stop" (EOS, stop token or stop
// string), "length" (MaxTokens or the context), "cancelled" or "error".
type FinishReason string

// Finish reasons.
const (
	FinishStop      FinishReason = "stop"
	FinishLength    FinishReason = "length"
	FinishCancelled FinishReason = "cancelled"
	FinishError     FinishReason = "error"
)

// TokenLogprob is a token with its log-probability.
type TokenLogprob struct {
	ID      int32
	Logprob float32
}

// Event is one item of a request's stream: a generated token (with the text
// it completes, when the engine has a tokenizer), or the end of a sequence.
type Event struct {
	// Index is the completion index (0..N-1).
	Index int
	// Token is the generated token id; valid when !Done or when Done carries
	// a last token (HasToken).
	Token    int32
	HasToken bool
	// Text is the newly completed text (may be empty while a multi-byte
	// character or a possible stop string is held back).
	Text string
	// Logprob and TopLogprobs are set when the request asked for them.
	Logprob     float32
	TopLogprobs []TokenLogprob
	// Done marks the last event of completion Index, with FinishReason.
	Done         bool
	FinishReason FinishReason
	// Err is set when FinishReason is FinishError.
	Err error
	// QueueSeconds is set on the first token event of each completion: the
	// time from Submit until the request's prompt was first scheduled.
	QueueSeconds float64
	// PromptTokens and CachedPromptTokens are set on Done events.
	PromptTokens       int
	CachedPromptTokens int
}
