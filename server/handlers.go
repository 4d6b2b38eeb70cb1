package server

import (
	"fmt"
	"net/http"
	"time"
)

// begin admits a generation request and decodes its body into v. It
// writes the error response itself and returns ok=false on failure.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, kind endpoint, v any) (*Model, func(), bool) {
	m, release, apiErr := s.admit()
	if apiErr != nil {
		s.fail(w, kind, apiErr)
		return nil, nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout)) // unsupported only on test recorders
	if apiErr := decodeBody(r.Body, v); apiErr != nil {
		// The deadline stays: net/http drains an unread body before it
		// replies, and a stalled client must not hold that drain open.
		release()
		s.fail(w, kind, apiErr)
		return nil, nil, false
	}
	_ = rc.SetReadDeadline(time.Time{})
	s.metrics.inFlight.Inc()
	s.active.Add(1)
	return m, func() { s.active.Add(-1); s.metrics.inFlight.Dec(); release() }, true
}

func checkModelName(m *Model, name string) *APIError {
	if name != "" && name != m.Name {
		return &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist; this server serves %q", name, m.Name)}
	}
	return nil
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req CompletionRequest
	m, release, ok := s.begin(w, r, completionEndpoint, &req)
	if !ok {
		return
	}
	defer release()
	g, apiErr := req.validate(s.cfg.DefaultMaxTokens)
	if apiErr == nil {
		apiErr = checkModelName(m, req.Model)
	}
	if apiErr == nil && len(g.stop) > 0 && m.Tokenizer == nil {
		apiErr = errInvalid("stop", "stop strings need a tokenizer; this model has none (use stop_token_ids)")
	}
	var prompts [][]int32
	if apiErr == nil {
		prompts, apiErr = s.completionPrompts(m, req.Prompt)
	}
	if apiErr != nil {
		s.fail(w, completionEndpoint, apiErr)
		return
	}
	run := &genRun{s: s, m: m, g: g, kind: completionEndpoint, id: s.newID("cmpl"), created: s.cfg.Now().Unix(), prompts: prompts}
	s.serveRun(w, r, run)
}

func (s *Server) completionPrompts(m *Model, p *Prompt) ([][]int32, *APIError) {
	if len(p.IDs) > 0 {
		return p.IDs, nil
	}
	if m.Tokenizer == nil {
		return nil, errInvalid("prompt", "this model has no tokenizer: send the prompt as a list of token ids")
	}
	out := make([][]int32, len(p.Texts))
	for i, t := range p.Texts {
		ids, err := m.Tokenizer.Encode(t, true)
		if err != nil {
			return nil, errInvalid("prompt", fmt.Sprintf("cannot tokenize: %v", err))
		}
		if len(ids) == 0 {
			return nil, errInvalid("prompt", "tokenizes to no tokens")
		}
		out[i] = ids
	}
	return out, nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req ChatRequest
	m, release, ok := s.begin(w, r, chatEndpoint, &req)
	if !ok {
		return
	}
	defer release()
	g, apiErr := req.validate(0)
	if apiErr == nil {
		apiErr = checkModelName(m, req.Model)
	}
	if apiErr == nil && (m.Tokenizer == nil || !m.Tokenizer.HasChatTemplate()) {
		apiErr = errInvalid("messages", "this model has no chat template; use /v1/completions")
	}
	var ids []int32
	if apiErr == nil {
		addGen := req.AddGenerationPrompt == nil || *req.AddGenerationPrompt
		text, err := m.Tokenizer.ApplyChatTemplate(req.Messages, addGen)
		if err != nil {
			apiErr = errInvalid("messages", fmt.Sprintf("chat template: %v", err))
		} else if ids, err = m.Tokenizer.Encode(text, false); err != nil {
			apiErr = errInvalid("messages", fmt.Sprintf("cannot tokenize: %v", err))
		} else if len(ids) == 0 {
			apiErr = errInvalid("messages", "the conversation renders to no tokens")
		}
	}
	if apiErr != nil {
		s.fail(w, chatEndpoint, apiErr)
		return
	}
	run := &genRun{s: s, m: m, g: g, kind: chatEndpoint, id: s.newID("chatcmpl"), created: s.cfg.Now().Unix(), prompts: [][]int32{ids}}
	s.serveRun(w, r, run)
}
