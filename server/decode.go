package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/tokamak-ai/tokamak/engine/sample"
)

// Limits on request values.
const (
	maxN           = 16
	maxLogprobs    = 20
	maxStopStrings = 16
	// maxStopStringBytes and maxStopTokenIDs bound the per-token work a
	// request's stop conditions cost the engine loop, which all requests share.
	maxStopStringBytes = 1024
	maxStopTokenIDs    = 256
)

// decodeBody decodes a JSON request body into v, strictly: unknown fields,
// trailing data, wrong types and malformed JSON are 400s; a body over the
// size limit (see http.MaxBytesReader) is a 413.
func decodeBody(r io.Reader, v any) *APIError {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return classifyDecodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return classifyDecodeError(err)
		}
		return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json",
			Message: "malformed JSON: unexpected data after the request object"}
	}
	return nil
}

func classifyDecodeError(err error) *APIError {
	var api *APIError
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return &APIError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit)}
	case errors.As(err, &api):
		return api
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json",
			Message: "malformed JSON: " + err.Error()}
	case errors.As(err, &typ):
		// Field is the Go path from the root; the shared parameters sit
		// in the embedded SamplingFields, which the API does not show.
		field := strings.TrimPrefix(typ.Field, "SamplingFields.")
		if field == "" {
			field = "body"
		}
		return errBadType(field, "of type "+typ.Type.String()+", not JSON "+typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: name, Code: "unknown_parameter",
			Message: fmt.Sprintf("unknown parameter %q", name)}
	}
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json",
		Message: "invalid request body: " + err.Error()}
}

// genParams is a validated request, independent of the endpoint.
type genParams struct {
	params         sample.Params
	maxTokens      int // 0: until the context ends
	n              int
	stop           []string
	stopTokenIDs   []int32
	ignoreEOS      bool
	stream         bool
	includeUsage   bool
	returnTokenIDs bool
	logprobs       bool
	topLogprobs    int
}

// validate checks the shared fields and fills g. defaultMaxTokens applies
// when neither max_tokens nor max_completion_tokens is given.
func (f *SamplingFields) validate(g *genParams, defaultMaxTokens int) *APIError {
	g.params = sample.Params{TopP: 1, RepetitionPenalty: 1, Temperature: 1}
	g.maxTokens = defaultMaxTokens
	if f.MaxTokens != nil && f.MaxCompletionTokens != nil && *f.MaxTokens != *f.MaxCompletionTokens {
		return errInvalid("max_completion_tokens", "conflicts with max_tokens; give one")
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", f.MaxTokens}, {"max_completion_tokens", f.MaxCompletionTokens}} {
		if mt.v != nil {
			if *mt.v < 1 {
				return errRange(mt.name, *mt.v, "1", "context length")
			}
			g.maxTokens = *mt.v
		}
	}
	floats := []struct {
		name   string
		v      *float64
		lo, hi float64
		loOpen bool
		dst    *float32
	}{
		{"temperature", f.Temperature, 0, 2, false, &g.params.Temperature},
		{"top_p", f.TopP, 0, 1, true, &g.params.TopP},
		{"min_p", f.MinP, 0, 1, false, &g.params.MinP},
		{"presence_penalty", f.PresencePenalty, -2, 2, false, &g.params.PresencePenalty},
		{"frequency_penalty", f.FrequencyPenalty, -2, 2, false, &g.params.FrequencyPenalty},
		{"repetition_penalty", f.RepetitionPenalty, 0, 10, true, &g.params.RepetitionPenalty},
	}
	for _, p := range floats {
		if p.v == nil {
			continue
		}
		x := *p.v
		if math.IsNaN(x) || x < p.lo || x > p.hi || (p.loOpen && x == p.lo) {
			lo := fmt.Sprint(p.lo)
			if p.loOpen {
				lo = "(exclusive) " + lo
			}
			return errRange(p.name, x, lo, fmt.Sprint(p.hi))
		}
		*p.dst = float32(x)
	}
	if f.TopK != nil {
		if *f.TopK < -1 {
			return errRange("top_k", *f.TopK, "-1", "vocabulary size")
		}
		g.params.TopK = max(*f.TopK, 0)
	}
	if f.Seed != nil {
		g.params.Seed = uint64(*f.Seed)
		g.params.HasSeed = true
	}
	g.n = 1
	if f.N != nil {
		if *f.N < 1 || *f.N > maxN {
			return errRange("n", *f.N, "1", fmt.Sprint(maxN))
		}
		g.n = *f.N
	}
	if len(f.Stop) > maxStopStrings {
		return errInvalid("stop", fmt.Sprintf("at most %d stop strings", maxStopStrings))
	}
	for _, s := range f.Stop {
		if s == "" {
			return errInvalid("stop", "stop strings must not be empty")
		}
		if len(s) > maxStopStringBytes {
			return errInvalid("stop", fmt.Sprintf("stop strings may be at most %d bytes", maxStopStringBytes))
		}
	}
	g.stop = f.Stop
	if len(f.StopTokenIDs) > maxStopTokenIDs {
		return errInvalid("stop_token_ids", fmt.Sprintf("at most %d stop token ids", maxStopTokenIDs))
	}
	for _, id := range f.StopTokenIDs {
		if id < 0 {
			return errRange("stop_token_ids", id, "0", "vocabulary size")
		}
	}
	g.stopTokenIDs = f.StopTokenIDs
	g.ignoreEOS = f.IgnoreEOS
	g.stream = f.Stream
	if f.StreamOptions != nil {
		if !f.Stream {
			return errInvalid("stream_options", "only allowed when stream is true")
		}
		g.includeUsage = f.StreamOptions.IncludeUsage
	}
	g.returnTokenIDs = f.ReturnTokenIDs
	return nil
}

// validateCompletion checks a completion request.
func (c *CompletionRequest) validate(defaultMaxTokens int) (*genParams, *APIError) {
	g := &genParams{}
	if err := c.SamplingFields.validate(g, defaultMaxTokens); err != nil {
		return nil, err
	}
	if c.Prompt == nil || c.Prompt.Len() == 0 {
		return nil, errInvalid("prompt", "is required")
	}
	for _, ids := range c.Prompt.IDs {
		if len(ids) == 0 {
			return nil, errInvalid("prompt", "token-id prompts must not be empty")
		}
		for _, id := range ids {
			if id < 0 {
				return nil, errRange("prompt", id, "0", "vocabulary size")
			}
		}
	}
	if c.Prompt.Len()*g.n > maxN*4 {
		return nil, errInvalid("prompt", fmt.Sprintf("prompts × n must be at most %d", maxN*4))
	}
	if c.Logprobs != nil {
		if *c.Logprobs < 0 || *c.Logprobs > maxLogprobs {
			return nil, errRange("logprobs", *c.Logprobs, "0", fmt.Sprint(maxLogprobs))
		}
		g.logprobs = true
		g.topLogprobs = *c.Logprobs
	}
	if c.Echo {
		return nil, errInvalid("echo", "is not supported")
	}
	return g, nil
}

var chatRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// validateChat checks a chat request.
func (c *ChatRequest) validate(defaultMaxTokens int) (*genParams, *APIError) {
	g := &genParams{}
	if err := c.SamplingFields.validate(g, defaultMaxTokens); err != nil {
		return nil, err
	}
	if len(c.Messages) == 0 {
		return nil, errInvalid("messages", "must hold at least one message")
	}
	for i, m := range c.Messages {
		if !chatRoles[m.Role] {
			return nil, errInvalid(fmt.Sprintf("messages[%d].role", i), "unknown role "+quote(m.Role))
		}
	}
	if c.TopLogprobs != nil {
		if *c.TopLogprobs < 0 || *c.TopLogprobs > maxLogprobs {
			return nil, errRange("top_logprobs", *c.TopLogprobs, "0", fmt.Sprint(maxLogprobs))
		}
		if !c.Logprobs {
			return nil, errInvalid("top_logprobs", "needs logprobs: true")
		}
		g.topLogprobs = *c.TopLogprobs
	}
	g.logprobs = c.Logprobs
	return g, nil
}
