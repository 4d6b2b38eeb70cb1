package server

import (
	"encoding/json"
	"net/http"

	"github.com/tokamak-ai/tokamak/engine"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func strPtr(s string) *string { return &s }

// completionLogprobs renders token events as the legacy logprobs object;
// offset is the text offset of the first event.
func (run *genRun) completionLogprobs(evs []engine.Event, offset int) *CompletionLogprobs {
	lp := &CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	for _, ev := range evs {
		lp.Tokens = append(lp.Tokens, run.tokenString(ev.Token))
		lp.TokenLogprobs = append(lp.TokenLogprobs, ev.Logprob)
		lp.TextOffset = append(lp.TextOffset, offset)
		offset += len(ev.Text)
		if run.g.topLogprobs > 0 {
			top := make(map[string]float32, len(ev.TopLogprobs))
			for _, t := range ev.TopLogprobs {
				top[run.tokenString(t.ID)] = t.Logprob
			}
			lp.TopLogprobs = append(lp.TopLogprobs, top)
		}
	}
	return lp
}

// chatLogprobs renders token events as the chat logprobs object.
func (run *genRun) chatLogprobs(evs []engine.Event) *ChatLogprobs {
	lp := &ChatLogprobs{Content: []ChatLogprob{}}
	entry := func(id int32, logprob float32) ChatLogprob {
		s := run.tokenString(id)
		b := make([]int, len(s))
		for i := range len(s) {
			b[i] = int(s[i])
		}
		return ChatLogprob{Token: s, Logprob: logprob, Bytes: b}
	}
	for _, ev := range evs {
		e := entry(ev.Token, ev.Logprob)
		e.TopLogprobs = []ChatLogprob{}
		for _, t := range ev.TopLogprobs {
			e.TopLogprobs = append(e.TopLogprobs, entry(t.ID, t.Logprob))
		}
		lp.Content = append(lp.Content, e)
	}
	return lp
}

func (run *genRun) completionResponse() CompletionResponse {
	resp := CompletionResponse{ID: run.id, Object: "text_completion", Created: run.created, Model: run.m.Name,
		Choices: make([]CompletionChoice, len(run.choices)), Usage: run.usage()}
	for i := range run.choices {
		c := &run.choices[i]
		ch := CompletionChoice{Index: i, Text: c.text.String(), FinishReason: strPtr(c.finish)}
		if run.g.returnTokenIDs {
			ch.TokenIDs = nonNil(c.ids)
		}
		if run.g.logprobs {
			ch.Logprobs = run.completionLogprobs(c.logprobs, 0)
		}
		resp.Choices[i] = ch
	}
	return resp
}

func (run *genRun) chatResponse() ChatResponse {
	resp := ChatResponse{ID: run.id, Object: "chat.completion", Created: run.created, Model: run.m.Name,
		Choices: make([]ChatChoice, len(run.choices)), Usage: run.usage()}
	for i := range run.choices {
		c := &run.choices[i]
		ch := ChatChoice{Index: i, Message: &ChatResponseMessage{Role: "assistant", Content: strPtr(c.text.String())},
			FinishReason: strPtr(c.finish)}
		if run.g.returnTokenIDs {
			ch.TokenIDs = nonNil(c.ids)
		}
		if run.g.logprobs {
			ch.Logprobs = run.chatLogprobs(c.logprobs)
		}
		resp.Choices[i] = ch
	}
	return resp
}

// nonNil keeps an empty id list as [] in JSON, never omitted-as-null
// ambiguity for callers who asked for ids.
func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}
