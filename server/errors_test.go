package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokamak-ai/tokamak/engine"
)

// errEngine fails every Submit with err.
type errEngine struct{ err error }

func (e errEngine) Submit(context.Context, engine.Request) (<-chan engine.Event, error) {
	return nil, e.err
}

// checkErrorBody asserts an OpenAI-shaped error body with the given status.
func checkErrorBody(t *testing.T, resp *http.Response, status int, contains string) ErrorDetail {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body ErrorBody
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %s is not OpenAI-shaped: %v", b, err)
	}
	if body.Error.Message == "" || body.Error.Type == "" {
		t.Errorf("error body lacks message or type: %s", b)
	}
	if !strings.Contains(body.Error.Message, contains) {
		t.Errorf("message %q does not contain %q", body.Error.Message, contains)
	}
	return body.Error
}

func TestErrorsHaveStatusAndOpenAIShape(t *testing.T) {
	long := "[" + strings.Repeat("1,", 59) + "1]"
	cases := []struct {
		name, path, body string
		status           int
		contains         string
	}{
		{"malformed json", "/v1/completions", `{"prompt":[1],`, 400, "malformed JSON"},
		{"trailing data", "/v1/completions", `{"prompt":[1]} {}`, 400, "malformed JSON"},
		{"not an object", "/v1/completions", `[1,2]`, 400, "must be"},
		{"wrong type", "/v1/completions", `{"prompt":[1],"max_tokens":"ten"}`, 400, "max_tokens"},
		{"wrong prompt type", "/v1/completions", `{"prompt":{"a":1}}`, 400, "prompt"},
		{"unknown parameter", "/v1/completions", `{"prompt":[1],"best_of_all":2}`, 400, "best_of_all"},
		{"missing prompt", "/v1/completions", `{"max_tokens":2}`, 400, "prompt"},
		{"empty prompt", "/v1/completions", `{"prompt":[]}`, 400, "prompt"},
		{"negative token", "/v1/completions", `{"prompt":[1,-3]}`, 400, "prompt"},
		{"temperature", "/v1/completions", `{"prompt":[1],"temperature":2.5}`, 400, "temperature"},
		{"top_p zero", "/v1/completions", `{"prompt":[1],"top_p":0}`, 400, "top_p"},
		{"top_k", "/v1/completions", `{"prompt":[1],"top_k":-5}`, 400, "top_k"},
		{"min_p", "/v1/completions", `{"prompt":[1],"min_p":1.5}`, 400, "min_p"},
		{"presence_penalty", "/v1/completions", `{"prompt":[1],"presence_penalty":-3}`, 400, "presence_penalty"},
		{"frequency_penalty", "/v1/completions", `{"prompt":[1],"frequency_penalty":9}`, 400, "frequency_penalty"},
		{"repetition_penalty", "/v1/completions", `{"prompt":[1],"repetition_penalty":0}`, 400, "repetition_penalty"},
		{"n", "/v1/completions", `{"prompt":[1],"n":0}`, 400, "n:"},
		{"max_tokens", "/v1/completions", `{"prompt":[1],"max_tokens":0}`, 400, "max_tokens"},
		{"logprobs", "/v1/completions", `{"prompt":[1],"logprobs":21}`, 400, "logprobs"},
		{"stream_options without stream", "/v1/completions", `{"prompt":[1],"stream_options":{"include_usage":true}}`, 400, "stream_options"},
		{"context", "/v1/completions", `{"prompt":` + long + `,"max_tokens":10}`, 400, "maximum context length is 64 tokens; the request has 60 prompt tokens and asks for 10"},
		{"text without tokenizer", "/v1/completions", `{"prompt":"hello"}`, 400, "no tokenizer"},
		{"stop without tokenizer", "/v1/completions", `{"prompt":[1],"stop":"x"}`, 400, "tokenizer"},
		{"chat without template", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "chat template"},
		{"chat bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"hi"}]}`, 400, "role"},
		{"chat no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"top_logprobs without logprobs", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, 400, "logprobs"},
		{"wrong model", "/v1/completions", `{"model":"gpt-9","prompt":[1]}`, 404, "gpt-9"},
		{"too large", "/v1/completions", `{"prompt":[` + strings.Repeat("1,", 1000) + `1]}`, 413, "larger than the limit"},
		{"unknown route", "/v1/embeddings", `{}`, 404, "no route"},
	}
	_, ts := newFakeServer(t, &fakeEngine{eos: -1}, nil, Config{MaxBodyBytes: 1024, Logger: quiet})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkErrorBody(t, post(t, ts.URL+tc.path, tc.body), tc.status, tc.contains)
		})
	}
}

func TestEngineErrorsMapToStatuses(t *testing.T) {
	errFull := errors.New("queue full")
	errDown := errors.New("down")
	errLong := errors.New("too long")
	classify := func(err error) ErrorClass {
		switch err {
		case errFull:
			return ErrorQueueFull
		case errDown:
			return ErrorShutdown
		case errLong:
			return ErrorContextTooLong
		}
		return ErrorInternal
	}
	for _, tc := range []struct {
		err      error
		status   int
		contains string
	}{
		{errFull, 429, "capacity"},
		{errDown, 503, "shutting down"},
		{errLong, 400, "context length"},
		{errors.New("boom"), 500, "boom"},
	} {
		s := New(Config{RetryAfterSeconds: 3, Logger: quiet})
		s.SetModel(&Model{Name: "m", Engine: errEngine{tc.err}, MaxContext: 64, ClassifyError: classify})
		ts := httptest.NewServer(s)
		resp := post(t, ts.URL+"/v1/completions", `{"prompt":[1,2]}`)
		if tc.status == 429 && resp.Header.Get("Retry-After") != "3" {
			t.Errorf("429 Retry-After %q, want 3", resp.Header.Get("Retry-After"))
		}
		checkErrorBody(t, resp, tc.status, tc.contains)
		ts.Close()
	}
}

func TestDrainingAndLoadingAre503(t *testing.T) {
	s := New(Config{Logger: quiet})
	ts := httptest.NewServer(s)
	defer ts.Close()
	checkErrorBody(t, post(t, ts.URL+"/v1/completions", `{"prompt":[1]}`), 503, "loading")
	s.SetModel(&Model{Name: "m", Engine: &fakeEngine{eos: -1}, MaxContext: 8})
	s.draining.Store(true)
	checkErrorBody(t, post(t, ts.URL+"/v1/completions", `{"prompt":[1]}`), 503, "shutting down")
}
