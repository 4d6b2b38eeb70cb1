package servebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Sample is the measurement of one request.
type Sample struct {
	// OK is false when the request failed (Err says why).
	OK  bool   `json:"ok"`
	Err string `json:"error,omitempty"`
	// Status is the HTTP status (0 if none came).
	Status int `json:"status"`
	// PromptTokens and OutputTokens are counted by the server (usage) or,
	// for output, from the streamed token ids.
	PromptTokens int `json:"prompt_tokens"`
	OutputTokens int `json:"output_tokens"`
	// StartSeconds is the send time relative to the run's start.
	StartSeconds float64 `json:"start_s"`
	// TTFTSeconds is send to first token; E2ESeconds send to the last byte.
	TTFTSeconds float64 `json:"ttft_s"`
	E2ESeconds  float64 `json:"e2e_s"`
	// ITLSeconds are the gaps between streamed chunks with tokens; a chunk
	// carrying k tokens contributes k gaps of gap/k.
	ITLSeconds []float64 `json:"-"`
}

// TPOTSeconds is the mean time per output token after the first.
func (s Sample) TPOTSeconds() float64 {
	if s.OutputTokens < 2 {
		return 0
	}
	return (s.E2ESeconds - s.TTFTSeconds) / float64(s.OutputTokens-1)
}

type chunk struct {
	Choices []struct {
		Text     string  `json:"text"`
		TokenIDs []int32 `json:"token_ids"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// send runs one streamed completion against baseURL (ending in /v1) and
// measures it.
func send(ctx context.Context, hc *http.Client, baseURL, model string, r Request) Sample {
	body := map[string]any{
		"model": model, "max_tokens": r.MaxTokens, "stream": true, "ignore_eos": true,
		"return_token_ids": true, "temperature": 0, "stream_options": map[string]any{"include_usage": true},
	}
	if r.PromptIDs != nil {
		body["prompt"] = r.PromptIDs
	} else {
		body["prompt"] = r.PromptText
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Sample{Err: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(baseURL, "/")+"/completions", bytes.NewReader(b))
	if err != nil {
		return Sample{Err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return Sample{Err: err.Error()}
	}
	defer resp.Body.Close()
	s := Sample{Status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		s.Err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		return s
	}
	last := start
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		now := time.Now()
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			s.Err = fmt.Sprintf("bad chunk %q: %v", data, err)
			return s
		}
		if c.Error != nil {
			s.Err = "stream error: " + c.Error.Message
			return s
		}
		if c.Usage != nil {
			s.PromptTokens = c.Usage.PromptTokens
		}
		n := 0
		for _, ch := range c.Choices {
			n += len(ch.TokenIDs)
		}
		if n == 0 {
			continue
		}
		if s.OutputTokens == 0 {
			s.TTFTSeconds = now.Sub(start).Seconds()
		} else {
			gap := now.Sub(last).Seconds() / float64(n)
			for range n {
				s.ITLSeconds = append(s.ITLSeconds, gap)
			}
		}
		if s.OutputTokens == 0 && n > 1 {
			// The first chunk's extra tokens arrived with the first one.
			for range n - 1 {
				s.ITLSeconds = append(s.ITLSeconds, 0)
			}
		}
		s.OutputTokens += n
		last = now
	}
	s.E2ESeconds = time.Since(start).Seconds()
	if err := sc.Err(); err != nil {
		s.Err = err.Error()
		return s
	}
	if !done {
		s.Err = "stream ended without [DONE]"
		return s
	}
	if s.OutputTokens == 0 {
		s.Err = "no tokens streamed"
		return s
	}
	s.OK = true
	return s
}
