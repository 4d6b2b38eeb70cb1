package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/tokamak-ai/tokamak/engine"
)

// sseWriter writes Server-Sent Events and notes the first write error
// (a client that went away).
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

func (s *sseWriter) data(v any) {
	if s.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return
	}
	s.raw(b)
}

func (s *sseWriter) raw(b []byte) {
	if s.err != nil {
		return
	}
	buf := make([]byte, 0, len(b)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	if s.timeout > 0 {
		// Not every ResponseWriter supports deadlines (httptest recorders);
		// without one the write simply has no deadline.
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	if _, err := s.w.Write(buf); err != nil {
		s.err = err
		return
	}
	s.err = s.rc.Flush()
}

// streamRun sends the run as SSE chunks: one per token event (text and,
// with return_token_ids, the ids it adds), a final chunk per choice with
// its finish_reason, the usage chunk when asked for, and [DONE]. A client
// that goes away cancels the request; events are drained either way.
func (s *Server) streamRun(ctx context.Context, cancel context.CancelFunc, w http.ResponseWriter, run *genRun, events <-chan promptEvent) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.StreamWriteTimeout}
	if run.kind == chatEndpoint {
		for i := range run.choices {
			sw.data(run.chatChunk(i, &ChatResponseMessage{Role: "assistant", Content: strPtr("")}, nil, nil, nil))
		}
	}
	failed := false
	for pe := range events {
		if sw.err != nil {
			cancel()
			continue
		}
		i := run.apply(pe)
		if i < 0 {
			continue
		}
		ev := pe.ev
		c := &run.choices[i]
		var ids []int32
		if ev.HasToken || !ev.Done {
			ids = []int32{ev.Token}
		}
		if ev.Done && (ev.FinishReason == engine.FinishError || ev.Err != nil) {
			failed = true
			msg := "generation failed"
			if ev.Err != nil {
				msg += ": " + ev.Err.Error()
			}
			sw.data(errInternal(msg).body())
			continue
		}
		var finish *string
		if ev.Done {
			finish = strPtr(c.finish)
		}
		if ev.Text == "" && ids == nil && finish == nil {
			continue
		}
		var evs []engine.Event
		if run.g.logprobs && ids != nil {
			evs = []engine.Event{ev}
		}
		if run.kind == chatEndpoint {
			delta := &ChatResponseMessage{}
			if ev.Text != "" || finish == nil {
				delta.Content = strPtr(ev.Text)
			}
			var lp *ChatLogprobs
			if evs != nil {
				lp = run.chatLogprobs(evs)
			}
			sw.data(run.chatChunk(i, delta, finish, lp, ids))
		} else {
			ch := CompletionChoice{Index: i, Text: ev.Text, FinishReason: finish}
			if run.g.returnTokenIDs {
				ch.TokenIDs = nonNil(ids)
			}
			if evs != nil {
				ch.Logprobs = run.completionLogprobs(evs, c.textBytes)
			}
			c.textBytes += len(ev.Text)
			sw.data(CompletionResponse{ID: run.id, Object: "text_completion", Created: run.created, Model: run.m.Name,
				Choices: []CompletionChoice{ch}})
		}
	}
	status := "200"
	switch {
	case sw.err != nil || ctx.Err() != nil:
		status = "499"
	case failed:
		status = "500"
	}
	s.metrics.requests.WithLabelValues(run.kind.String(), status).Inc()
	if sw.err != nil || ctx.Err() != nil {
		return
	}
	if run.g.includeUsage {
		u := run.usage()
		if run.kind == chatEndpoint {
			sw.data(ChatResponse{ID: run.id, Object: "chat.completion.chunk", Created: run.created, Model: run.m.Name,
				Choices: []ChatChoice{}, Usage: u})
		} else {
			sw.data(CompletionResponse{ID: run.id, Object: "text_completion", Created: run.created, Model: run.m.Name,
				Choices: []CompletionChoice{}, Usage: u})
		}
	}
	sw.raw([]byte("[DONE]"))
}

func (run *genRun) chatChunk(i int, delta *ChatResponseMessage, finish *string, lp *ChatLogprobs, ids []int32) ChatResponse {
	ch := ChatChoice{Index: i, Delta: delta, FinishReason: finish, Logprobs: lp}
	if run.g.returnTokenIDs {
		ch.TokenIDs = nonNil(ids)
	}
	return ChatResponse{ID: run.id, Object: "chat.completion.chunk", Created: run.created, Model: run.m.Name,
		Choices: []ChatChoice{ch}}
}
