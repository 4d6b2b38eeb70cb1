package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokamak-ai/tokamak/engine"
)

// endpoint tells the response shapes apart.
type endpoint int

const (
	completionEndpoint endpoint = iota
	chatEndpoint
)

func (e endpoint) String() string {
	if e == chatEndpoint {
		return "chat"
	}
	return "completions"
}

// promptEvent is an engine event tagged with its prompt.
type promptEvent struct {
	prompt int
	ev     engine.Event
}

// choiceState accumulates one choice (prompt × completion index).
type choiceState struct {
	text      strings.Builder
	ids       []int32
	logprobs  []engine.Event // token events, when logprobs were asked for
	finish    string
	done      bool
	tokens    int
	firstAt   time.Time
	lastAt    time.Time
	cached    int
	errMsg    string
	textBytes int // offset of the next text, for completion text_offset
}

// genRun is one accepted generation request.
type genRun struct {
	s        *Server
	m        *Model
	g        *genParams
	kind     endpoint
	id       string
	created  int64
	prompts  [][]int32
	start    time.Time
	choices  []choiceState
	finished int
}

// checkContext fixes each prompt's max tokens against the context length.
func (run *genRun) maxTokens() ([]int, *APIError) {
	out := make([]int, len(run.prompts))
	for i, p := range run.prompts {
		mt := run.g.maxTokens
		if mt == 0 {
			mt = run.m.MaxContext - len(p)
			if mt < 1 {
				return nil, errContext(len(p), 1, run.m.MaxContext)
			}
		}
		if run.m.MaxContext > 0 && mt > run.m.MaxContext-len(p) { // len(p)+mt can overflow
			return nil, errContext(len(p), mt, run.m.MaxContext)
		}
		out[i] = mt
	}
	return out, nil
}

// submit starts every prompt on the engine and merges their events. On
// error, whatever started is cancelled and drained.
func (run *genRun) submit(ctx context.Context, cancel context.CancelFunc) (<-chan promptEvent, *APIError) {
	mts, apiErr := run.maxTokens()
	if apiErr != nil {
		return nil, apiErr
	}
	params := run.g.params
	params.Logprobs = run.g.logprobs
	params.TopLogprobs = run.g.topLogprobs
	chans := make([]<-chan engine.Event, 0, len(run.prompts))
	for i, p := range run.prompts {
		req := engine.Request{
			PromptIDs:    p,
			Params:       params,
			MaxTokens:    mts[i],
			StopTokenIDs: run.g.stopTokenIDs,
			IgnoreEOS:    run.g.ignoreEOS,
			StopStrings:  run.g.stop,
			N:            run.g.n,
		}
		ch, err := run.m.Engine.Submit(ctx, req)
		if err != nil {
			cancel()
			for _, c := range chans {
				for range c {
				}
			}
			return nil, run.s.submitError(run.m, err, len(p), mts[i])
		}
		chans = append(chans, ch)
	}
	out := make(chan promptEvent, 16)
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				out <- promptEvent{prompt: i, ev: ev}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	for _, p := range run.prompts {
		run.s.metrics.promptTokens.Add(float64(len(p)))
	}
	return out, nil
}

func (s *Server) submitError(m *Model, err error, promptTokens, maxTokens int) *APIError {
	class := ErrorInternal
	if m.ClassifyError != nil {
		class = m.ClassifyError(err)
	}
	switch class {
	case ErrorQueueFull:
		s.metrics.rejected.Inc()
		return errQueueFull(s.cfg.RetryAfterSeconds)
	case ErrorContextTooLong:
		e := errContext(promptTokens, maxTokens, m.MaxContext)
		e.Message += ": " + err.Error()
		return e
	case ErrorShutdown:
		return errUnavailable("server is shutting down")
	case ErrorInvalid:
		return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: err.Error()}
	}
	s.cfg.Logger.Error("submit failed", "err", err)
	return errInternal(fmt.Sprintf("submit: %v", err))
}

// apply folds one event into its choice and records metrics. It returns
// the choice index.
func (run *genRun) apply(pe promptEvent) int {
	idx := pe.prompt*run.g.n + pe.ev.Index
	if idx < 0 || idx >= len(run.choices) {
		return -1
	}
	c := &run.choices[idx]
	ev := pe.ev
	now := run.s.cfg.Now()
	if ev.HasToken || !ev.Done {
		label := run.m.Name
		if c.tokens == 0 {
			c.firstAt = now
			run.s.metrics.ttft.WithLabelValues(label).Observe(now.Sub(run.start).Seconds())
			if ev.QueueSeconds > 0 {
				run.s.metrics.queue.WithLabelValues(label).Observe(ev.QueueSeconds)
			}
		} else {
			run.s.metrics.itl.WithLabelValues(label).Observe(now.Sub(c.lastAt).Seconds())
		}
		c.lastAt = now
		c.tokens++
		c.ids = append(c.ids, ev.Token)
		run.s.metrics.generationTokens.Inc()
		if run.g.logprobs {
			c.logprobs = append(c.logprobs, ev)
		}
	}
	c.text.WriteString(ev.Text)
	if ev.Done && !c.done {
		c.done = true
		c.finish = string(ev.FinishReason)
		c.cached = ev.CachedPromptTokens
		if ev.Err != nil {
			c.errMsg = ev.Err.Error()
		}
		run.finished++
		if run.finished == len(run.choices) {
			run.s.metrics.e2e.WithLabelValues(run.m.Name).Observe(now.Sub(run.start).Seconds())
		}
	}
	return idx
}

// usage totals the run's tokens.
func (run *genRun) usage() *Usage {
	u := &Usage{}
	for _, p := range run.prompts {
		u.PromptTokens += len(p)
	}
	cached := 0
	for i := range run.choices {
		u.CompletionTokens += run.choices[i].tokens
		if i%run.g.n == 0 {
			cached += run.choices[i].cached
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if cached > 0 {
		u.PromptTokensDetails = &PromptTokensDetails{CachedTokens: cached}
	}
	return u
}

// tokenString is how a token appears in logprobs: its text, or
// "token_id:N" without a tokenizer.
func (run *genRun) tokenString(id int32) string {
	if run.m.Tokenizer != nil {
		if s, err := run.m.Tokenizer.Decode([]int32{id}); err == nil {
			return s
		}
	}
	return fmt.Sprintf("token_id:%d", id)
}

// serve runs an accepted request to completion, streamed or not.
func (s *Server) serveRun(w http.ResponseWriter, r *http.Request, run *genRun) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.hardStop, cancel)
	defer stop()
	run.choices = make([]choiceState, len(run.prompts)*run.g.n)
	run.start = s.cfg.Now()
	events, apiErr := run.submit(ctx, cancel)
	if apiErr != nil {
		s.fail(w, run.kind, apiErr)
		return
	}
	if run.g.stream {
		s.streamRun(ctx, cancel, w, run, events)
		return
	}
	for pe := range events {
		run.apply(pe)
	}
	if ctx.Err() != nil {
		s.metrics.requests.WithLabelValues(run.kind.String(), "499").Inc()
		return
	}
	for i := range run.choices {
		if c := &run.choices[i]; c.errMsg != "" || c.finish == string(engine.FinishError) {
			s.fail(w, run.kind, errInternal("generation failed: "+c.errMsg))
			return
		}
	}
	s.metrics.requests.WithLabelValues(run.kind.String(), "200").Inc()
	if run.kind == chatEndpoint {
		writeJSON(w, http.StatusOK, run.chatResponse())
	} else {
		writeJSON(w, http.StatusOK, run.completionResponse())
	}
}

func (s *Server) fail(w http.ResponseWriter, kind endpoint, e *APIError) {
	s.metrics.requests.WithLabelValues(kind.String(), fmt.Sprint(e.Status)).Inc()
	writeError(w, e)
}
