package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeJSON reads a response body into v, failing the test on error.
func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// readSSE returns the data payloads of an event stream, [DONE] included.
func readSSE(t *testing.T, resp *http.Response) []string {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, data)
		} else if line != "" {
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return out
}

// streamedCompletion gathers a streamed completion's text, ids, finish
// reasons and usage per choice.
type streamedCompletion struct {
	text   map[int]string
	ids    map[int][]int32
	finish map[int]string
	usage  *Usage
}

func collectCompletionStream(t *testing.T, payloads []string) streamedCompletion {
	t.Helper()
	sc := streamedCompletion{text: map[int]string{}, ids: map[int][]int32{}, finish: map[int]string{}}
	if len(payloads) == 0 || payloads[len(payloads)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", payloads)
	}
	for _, p := range payloads[:len(payloads)-1] {
		var c CompletionResponse
		if err := json.Unmarshal([]byte(p), &c); err != nil {
			t.Fatalf("chunk %q: %v", p, err)
		}
		if c.Usage != nil {
			sc.usage = c.Usage
		}
		for _, ch := range c.Choices {
			sc.text[ch.Index] += ch.Text
			sc.ids[ch.Index] = append(sc.ids[ch.Index], ch.TokenIDs...)
			if ch.FinishReason != nil {
				sc.finish[ch.Index] = *ch.FinishReason
			}
		}
	}
	return sc
}

func TestHealthFollowsModelAndDrain(t *testing.T) {
	s := New(Config{Logger: quiet})
	get := func() int {
		rec := httptestRecorder(s, "GET", "/health", "")
		return rec
	}
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("before model: %d, want 503", got)
	}
	s.SetModel(&Model{Name: "m", Engine: &fakeEngine{}, MaxContext: 8})
	if got := get(); got != http.StatusOK {
		t.Fatalf("ready: %d, want 200", got)
	}
	s.draining.Store(true)
	if got := get(); got != http.StatusServiceUnavailable {
		t.Fatalf("draining: %d, want 503", got)
	}
}

func TestStreamedAndNonStreamedAgree(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"ids", `{"model":"fake","prompt":[5,6,7],"max_tokens":6,"n":2,"return_token_ids":true,"stream":%s}`},
		{"two prompts", `{"prompt":[[5,6],[9]],"max_tokens":4,"return_token_ids":true,"stream":%s}`},
		{"text", `{"prompt":"a bb ccc","max_tokens":5,"return_token_ids":true,"stream":%s}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newFakeServer(t, &fakeEngine{eos: -1, withText: true}, fakeTokenizer{}, Config{Logger: quiet})
			var full CompletionResponse
			resp := post(t, ts.URL+"/v1/completions", strings.Replace(tc.body, "%s", "false", 1))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			decodeJSON(t, resp, &full)
			streamBody := strings.Replace(tc.body, "%s", `true,"stream_options":{"include_usage":true}`, 1)
			sc := collectCompletionStream(t, readSSE(t, post(t, ts.URL+"/v1/completions", streamBody)))
			if len(full.Choices) != len(sc.text) {
				t.Fatalf("%d choices non-streamed, %d streamed", len(full.Choices), len(sc.text))
			}
			for _, c := range full.Choices {
				if c.Text != sc.text[c.Index] || !slices.Equal(c.TokenIDs, sc.ids[c.Index]) || *c.FinishReason != sc.finish[c.Index] {
					t.Errorf("choice %d: non-streamed (%q %v %s) != streamed (%q %v %s)", c.Index,
						c.Text, c.TokenIDs, *c.FinishReason, sc.text[c.Index], sc.ids[c.Index], sc.finish[c.Index])
				}
				if len(c.TokenIDs) == 0 {
					t.Errorf("choice %d has no token ids", c.Index)
				}
			}
			if sc.usage == nil || *sc.usage != *full.Usage {
				t.Errorf("usage streamed %+v, non-streamed %+v", sc.usage, full.Usage)
			}
		})
	}
}

func TestCompletionUsageAndIDs(t *testing.T) {
	_, ts := newFakeServer(t, &fakeEngine{eos: -1}, nil, Config{Logger: quiet})
	var r CompletionResponse
	decodeJSON(t, post(t, ts.URL+"/v1/completions", `{"prompt":[10,11,12],"max_tokens":4,"n":2,"return_token_ids":true}`), &r)
	want := Usage{PromptTokens: 3, CompletionTokens: 8, TotalTokens: 11}
	if *r.Usage != want {
		t.Errorf("usage %+v, want %+v", *r.Usage, want)
	}
	if got := r.Choices[0].TokenIDs; !slices.Equal(got, []int32{13, 14, 15, 16}) {
		t.Errorf("choice 0 ids %v", got)
	}
	if r.Choices[1].Index != 1 || *r.Choices[0].FinishReason != "length" || r.Object != "text_completion" {
		t.Errorf("bad response %+v", r)
	}
}

func TestChatStreamsRoleContentAndStop(t *testing.T) {
	f := &fakeEngine{eos: 15, withText: true}
	_, ts := newFakeServer(t, f, fakeTokenizer{}, Config{Logger: quiet})
	body := `{"model":"fake","messages":[{"role":"user","content":"hi there"}],"max_completion_tokens":20,"stream":true,"logprobs":true,"top_logprobs":2}`
	payloads := readSSE(t, post(t, ts.URL+"/v1/chat/completions", body))
	var content strings.Builder
	var finish string
	roleSeen := false
	for _, p := range payloads[:len(payloads)-1] {
		var c ChatResponse
		if err := json.Unmarshal([]byte(p), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Role == "assistant" {
				roleSeen = true
			}
			if ch.Delta.Content != nil {
				content.WriteString(*ch.Delta.Content)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
			if ch.Logprobs != nil && len(ch.Logprobs.Content[0].TopLogprobs) != 2 {
				t.Errorf("want 2 top logprobs, got %+v", ch.Logprobs.Content[0])
			}
		}
	}
	// "assistant:" is the last word: len 10, so tokens 11, 12, ..., stopping at eos 15.
	if !roleSeen || finish != "stop" || !strings.HasSuffix(content.String(), "t15 ") {
		t.Errorf("role %v finish %q content %q", roleSeen, finish, content.String())
	}
	f.mu.Lock()
	req := f.lastReq
	f.mu.Unlock()
	if req.MaxTokens != 20 || !req.Params.Logprobs || req.Params.TopLogprobs != 2 {
		t.Errorf("engine request %+v", req)
	}
}

func TestSamplingParametersReachEngine(t *testing.T) {
	f := &fakeEngine{eos: -1}
	_, ts := newFakeServer(t, f, fakeTokenizer{}, Config{Logger: quiet})
	body := `{"prompt":[1],"max_tokens":2,"temperature":0.7,"top_p":0.9,"top_k":40,"min_p":0.05,"presence_penalty":0.5,
		"frequency_penalty":-0.5,"repetition_penalty":1.1,"seed":42,"stop":["x","y"],"stop_token_ids":[3],"ignore_eos":true}`
	resp := post(t, ts.URL+"/v1/completions", body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.lastReq.Params
	if p.Temperature != 0.7 || p.TopP != 0.9 || p.TopK != 40 || p.MinP != 0.05 || p.PresencePenalty != 0.5 ||
		p.FrequencyPenalty != -0.5 || p.RepetitionPenalty != 1.1 || !p.HasSeed || p.Seed != 42 {
		t.Errorf("params %+v", p)
	}
	if !slices.Equal(f.lastReq.StopStrings, []string{"x", "y"}) || !slices.Equal(f.lastReq.StopTokenIDs, []int32{3}) || !f.lastReq.IgnoreEOS {
		t.Errorf("request %+v", f.lastReq)
	}
}

func TestModelsAndMetrics(t *testing.T) {
	_, ts := newFakeServer(t, &fakeEngine{eos: -1}, nil, Config{Devices: fakeDevices{}, Logger: quiet})
	var list ModelList
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, resp, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "fake" || list.Data[0].MaxModelLen != 64 {
		t.Errorf("models %+v", list)
	}
	post(t, ts.URL+"/v1/completions", `{"prompt":[1,2],"max_tokens":3}`).Body.Close()
	resp, err = http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"tokamak_time_to_first_token_seconds_count{model=\"fake\"} 1",
		"tokamak_inter_token_latency_seconds_count{model=\"fake\"} 2",
		"tokamak_e2e_request_latency_seconds_count{model=\"fake\"} 1",
		"tokamak_request_queue_time_seconds",
		"tokamak_prompt_tokens_total 2", "tokamak_generation_tokens_total 3",
		"tokamak_num_requests_running", "tokamak_num_requests_waiting", "tokamak_kv_cache_usage_ratio 0.25",
		"tokamak_prefix_cache_hit_ratio", `tokamak_gpu_memory_used_bytes{gpu="0"} 1024`, `tokamak_gpu_utilization_ratio{gpu="0"} 0.5`,
		`tokamak_requests_total{endpoint="completions",status="200"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type fakeDevices struct{}

func (fakeDevices) Sample() ([]DeviceSample, error) {
	return []DeviceSample{{Index: 0, MemoryUsedBytes: 1024, MemoryTotalBytes: 4096, Utilization: 0.5}}, nil
}

func TestDisconnectCancelsRequest(t *testing.T) {
	f := &fakeEngine{eos: -1, stepDelay: 5 * time.Millisecond}
	_, ts := newFakeServer(t, f, nil, Config{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
		strings.NewReader(`{"prompt":[1],"max_tokens":60,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if f.active.Load() != 1 {
		t.Fatalf("active %d, want 1", f.active.Load())
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "engine request released", func() bool { return f.active.Load() == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOverloadIsBounded(t *testing.T) {
	const capacity = 4
	f := &fakeEngine{eos: -1, stepDelay: 2 * time.Millisecond, capacity: capacity}
	_, ts := newFakeServer(t, f, nil, Config{MaxInFlight: 2 * capacity, Logger: quiet})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for range 10 * capacity {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":[1],"max_tokens":20}`))
			if err != nil {
				t.Error(err)
				return
			}
			var body struct {
				Choices []CompletionChoice
				Error   *ErrorDetail
			}
			decodeJSON(t, resp, &body)
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
			switch resp.StatusCode {
			case 200:
				if len(body.Choices) != 1 || *body.Choices[0].FinishReason != "length" {
					t.Errorf("accepted request did not complete: %+v", body)
				}
			case 429:
				if resp.Header.Get("Retry-After") == "" || body.Error == nil || body.Error.Type != "rate_limit_error" {
					t.Errorf("429 without Retry-After or error body: %+v", body)
				}
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if counts[200] < capacity || counts[429] == 0 || counts[200]+counts[429] != 10*capacity {
		t.Errorf("statuses %v", counts)
	}
	if f.active.Load() != 0 {
		t.Errorf("%d engine requests left active", f.active.Load())
	}
}
