package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/tokenizer"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
	"github.com/tokamak-ai/tokamak/internal/tinymodel"
)

// reference is the part of a test model's reference.json the tests use.
type reference struct {
	InputIDs  []int32 `json:"input_ids"`
	GreedyIDs []int32 `json:"greedy_ids"`
}

// realServer is the real engine on a CPU backend behind a Server on a
// loopback port.
type realServer struct {
	s    *Server
	e    *engine.Engine
	url  string
	ref  reference
	stop context.CancelFunc
	done chan error
}

// startReal serves testdata model name; ctx (if non-nil) ends Serve.
func startReal(t *testing.T, name string, ecfg engine.Config, scfg Config, ctx context.Context) *realServer {
	t.Helper()
	dir := shareddata.Path(t, "models", name)
	raw, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	rs := startRealDir(t, dir, name, nil, ecfg, scfg, ctx)
	rs.ref = ref
	return rs
}

// startRealDir serves the model in dir under name, with tok (may be nil).
func startRealDir(t *testing.T, dir, name string, tok *tokenizer.Tokenizer, ecfg engine.Config, scfg Config, ctx context.Context) *realServer {
	t.Helper()
	rs := &realServer{done: make(chan error, 1)}
	b := cpu.New()
	m, err := model.Load(dir, b)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if ecfg.NumBlocks == 0 {
		ecfg.NumBlocks = 256
	}
	ecfg.MaxContextTokens = m.Config.MaxPositionEmbeddings
	ecfg.EOSTokenIDs = m.Config.EOSIDs()
	ecfg.VocabSize = m.Config.VocabSize
	if tok != nil {
		ecfg.Detokenizer = detok{tok}
		ecfg.EOSTokenIDs = append(ecfg.EOSTokenIDs, tok.EOS()...)
	}
	e, err := engine.New(m, ecfg)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	rs.e = e
	rs.s = New(scfg)
	rs.s.SetModel(NewEngineModel(name, e, WrapTokenizer(tok)))
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, rs.stop = context.WithCancel(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs.url = "http://" + ln.Addr().String()
	go func() { rs.done <- rs.s.Serve(ctx, ln, 10*time.Second) }()
	t.Cleanup(func() {
		rs.stop()
		<-rs.done
		_ = e.Close()
		m.Close()
		_ = b.Close()
	})
	return rs
}

func idsJSON(ids []int32) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

func TestE2EGreedyTokenIDsMatchReference(t *testing.T) {
	for _, name := range []string{"llama3-gqa", "qwen2-bias-tied", "qwen3-qknorm", "mistral-f16"} {
		t.Run(name, func(t *testing.T) {
			rs := startReal(t, name, engine.Config{}, Config{Logger: quiet}, nil)
			body := fmt.Sprintf(`{"model":%q,"prompt":%s,"max_tokens":%d,"temperature":0,"ignore_eos":true,"return_token_ids":true,"stream":%%s}`,
				name, idsJSON(rs.ref.InputIDs), len(rs.ref.GreedyIDs))
			resp := post(t, rs.url+"/v1/completions", strings.Replace(body, "%s", "false", 1))
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var full CompletionResponse
			decodeJSON(t, resp, &full)
			if got := full.Choices[0].TokenIDs; !slices.Equal(got, rs.ref.GreedyIDs) {
				t.Errorf("greedy ids\n got %v\nwant %v", got, rs.ref.GreedyIDs)
			}
			want := Usage{PromptTokens: len(rs.ref.InputIDs), CompletionTokens: len(rs.ref.GreedyIDs),
				TotalTokens: len(rs.ref.InputIDs) + len(rs.ref.GreedyIDs)}
			if u := *full.Usage; u.PromptTokens != want.PromptTokens || u.CompletionTokens != want.CompletionTokens || u.TotalTokens != want.TotalTokens {
				t.Errorf("usage %+v, want %+v", u, want)
			}
			if *full.Choices[0].FinishReason != "length" {
				t.Errorf("finish_reason %q, want length", *full.Choices[0].FinishReason)
			}
			streamBody := strings.Replace(body, "%s", `true,"stream_options":{"include_usage":true}`, 1)
			sc := collectCompletionStream(t, readSSE(t, post(t, rs.url+"/v1/completions", streamBody)))
			if !slices.Equal(sc.ids[0], full.Choices[0].TokenIDs) || sc.finish[0] != "length" {
				t.Errorf("streamed ids %v (%s) != non-streamed %v", sc.ids[0], sc.finish[0], full.Choices[0].TokenIDs)
			}
			if sc.usage == nil || sc.usage.CompletionTokens != want.CompletionTokens || sc.usage.PromptTokens != want.PromptTokens {
				t.Errorf("streamed usage %+v, want %+v", sc.usage, want)
			}
		})
	}
}

func TestE2ESeededSamplingStreamedEqualsNonStreamed(t *testing.T) {
	rs := startReal(t, "llama3-gqa", engine.Config{}, Config{Logger: quiet}, nil)
	body := fmt.Sprintf(`{"prompt":%s,"max_tokens":12,"temperature":0.9,"top_k":50,"seed":7,"n":2,"ignore_eos":true,"return_token_ids":true,"stream":%%s}`,
		idsJSON(rs.ref.InputIDs[:10]))
	var full CompletionResponse
	decodeJSON(t, post(t, rs.url+"/v1/completions", strings.Replace(body, "%s", "false", 1)), &full)
	sc := collectCompletionStream(t, readSSE(t, post(t, rs.url+"/v1/completions", strings.Replace(body, "%s", "true", 1))))
	if len(full.Choices) != 2 {
		t.Fatalf("%d choices, want 2", len(full.Choices))
	}
	for _, c := range full.Choices {
		if len(c.TokenIDs) != 12 || !slices.Equal(c.TokenIDs, sc.ids[c.Index]) {
			t.Errorf("choice %d: non-streamed %v, streamed %v", c.Index, c.TokenIDs, sc.ids[c.Index])
		}
	}
}

func TestE2EErrors(t *testing.T) {
	rs := startReal(t, "llama3-gqa", engine.Config{}, Config{MaxBodyBytes: 8 << 10, Logger: quiet}, nil)
	p := idsJSON(rs.ref.InputIDs)
	for _, tc := range []struct {
		name, body string
		status     int
		contains   string
	}{
		{"context", `{"prompt":` + p + `,"max_tokens":4090}`, 400, "maximum context length is 4096 tokens; the request has 40 prompt tokens and asks for 4090"},
		{"token out of vocabulary", `{"prompt":[1,2,512]}`, 400, "512"},
		{"text prompt without tokenizer", `{"prompt":"hello"}`, 400, "no tokenizer"},
		{"chat without tokenizer", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "chat template"},
		{"malformed", `{"prompt":[1,2`, 400, "malformed JSON"},
		{"wrong type", `{"prompt":[1],"temperature":"hot"}`, 400, "temperature"},
		{"unknown parameter", `{"prompt":[1],"frobnicate":true}`, 400, "frobnicate"},
		{"out of range", `{"prompt":[1],"top_p":1.5}`, 400, "top_p"},
		{"too large", `{"prompt":[` + strings.Repeat("7,", 5000) + `7]}`, 413, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/completions"
			if strings.Contains(tc.body, "messages") {
				path = "/v1/chat/completions"
			}
			checkErrorBody(t, post(t, rs.url+path, tc.body), tc.status, tc.contains)
		})
	}
}

func TestE2EDisconnectFreesKVBlocks(t *testing.T) {
	rs := startReal(t, "llama3-gqa", engine.Config{}, Config{Logger: quiet}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"prompt":` + idsJSON(rs.ref.InputIDs) + `,"max_tokens":3000,"ignore_eos":true,"stream":true}`
	req, _ := http.NewRequestWithContext(ctx, "POST", rs.url+"/v1/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 5 { // a few chunks: the request is running and holds blocks
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if st := rs.e.Stats(); st.KVBlocksUsed == 0 || st.Running != 1 {
		t.Fatalf("while streaming: %+v", st)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "KV blocks freed", func() bool {
		st := rs.e.Stats()
		return st.KVBlocksUsed == 0 && st.Running == 0 && st.Waiting == 0
	})
	waitFor(t, "handler finished", func() bool { return rs.s.InFlight() == 0 })
}

func TestE2ESIGTERMDrains(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	rs := startReal(t, "llama3-gqa", engine.Config{}, Config{Logger: quiet}, ctx)
	body := `{"prompt":` + idsJSON(rs.ref.InputIDs) + `,"max_tokens":200,"ignore_eos":true,"stream":true}`
	drainCheck(t, rs.s, rs.url, rs.done, func() {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}, body)
	rs.done <- nil // for the cleanup, which waits on Serve again
	if st := rs.e.Stats(); st.Running != 0 || st.KVBlocksUsed != 0 {
		t.Errorf("engine not idle after drain: %+v", st)
	}
}

// TestE2EOverloadIsBounded sends 10× the engine's queue capacity at once:
// nothing crashes, every accepted request completes, the rest get 429, and
// the heap stays bounded.
func TestE2EOverloadIsBounded(t *testing.T) {
	const queue = 4
	rs := startReal(t, "llama3-gqa", engine.Config{MaxQueue: queue, MaxSeqs: 4}, Config{Logger: quiet}, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	body := `{"prompt":` + idsJSON(rs.ref.InputIDs) + `,"max_tokens":16,"ignore_eos":true,"return_token_ids":true}`
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for range 10 * queue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(rs.url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			var out struct {
				Choices []CompletionChoice
				Error   *ErrorDetail
			}
			decodeJSON(t, resp, &out)
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
			switch resp.StatusCode {
			case 200:
				if len(out.Choices) != 1 || len(out.Choices[0].TokenIDs) != 16 {
					t.Errorf("accepted request incomplete: %+v", out.Choices)
				}
			case 429:
				if resp.Header.Get("Retry-After") == "" || out.Error == nil {
					t.Errorf("429 without Retry-After or error body")
				}
			default:
				t.Errorf("status %d: %+v", resp.StatusCode, out.Error)
			}
		}()
	}
	wg.Wait()
	if counts[200] < queue || counts[429] == 0 || counts[200]+counts[429] != 10*queue {
		t.Errorf("statuses %v", counts)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB under overload", grown>>20)
	}
	if st := rs.e.Stats(); st.Running != 0 || st.Waiting != 0 || st.KVBlocksUsed != 0 {
		t.Errorf("engine not idle after overload: %+v", st)
	}
	t.Logf("statuses %v", counts)
}

// detok adapts the tokenizer to engine.Detokenizer.
type detok struct{ t *tokenizer.Tokenizer }

func (d detok) NewStreamDecoder() engine.StreamDecoder { return d.t.NewStreamDecoder() }

// TestE2ETextAndChatWithTokenizer serves the embedded tiny model, which has
// a tokenizer and a chat template: text prompts, chat (streamed and not),
// stop strings and logprobs.
func TestE2ETextAndChatWithTokenizer(t *testing.T) {
	dir := t.TempDir()
	if err := tinymodel.Write(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs := startRealDir(t, dir, "tiny", tok, engine.Config{}, Config{Logger: quiet}, nil)

	chat := `{"model":"tiny","messages":[{"role":"user","content":"hello there"}],"max_tokens":12,"temperature":0,"return_token_ids":true,"stream":%s}`
	var full ChatResponse
	resp := post(t, rs.url+"/v1/chat/completions", strings.Replace(chat, "%s", "false", 1))
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("chat status %d: %s", resp.StatusCode, b)
	}
	decodeJSON(t, resp, &full)
	msg := full.Choices[0].Message
	if msg.Role != "assistant" || msg.Content == nil || *msg.Content == "" || full.Usage.CompletionTokens != len(full.Choices[0].TokenIDs) {
		t.Fatalf("chat response %+v", full)
	}
	if text := tok.Decode(full.Choices[0].TokenIDs); text != *msg.Content {
		t.Errorf("content %q != decoded ids %q", *msg.Content, text)
	}
	var streamed strings.Builder
	for _, p := range readSSE(t, post(t, rs.url+"/v1/chat/completions", strings.Replace(chat, "%s", "true", 1))) {
		if p == "[DONE]" {
			break
		}
		var c ChatResponse
		if err := json.Unmarshal([]byte(p), &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				streamed.WriteString(*ch.Delta.Content)
			}
		}
	}
	if streamed.String() != *msg.Content {
		t.Errorf("streamed chat %q != non-streamed %q", streamed.String(), *msg.Content)
	}

	// A stop string cut from a greedy continuation ends the text before it.
	var plain CompletionResponse
	decodeJSON(t, post(t, rs.url+"/v1/completions", `{"prompt":"the cat","max_tokens":16,"temperature":0}`), &plain)
	text := plain.Choices[0].Text
	if len(text) < 4 {
		t.Fatalf("greedy text %q too short for a stop test", text)
	}
	stop := text[2:4]
	var stopped CompletionResponse
	body, _ := json.Marshal(map[string]any{"prompt": "the cat", "max_tokens": 16, "temperature": 0, "stop": []string{stop}, "logprobs": 1})
	decodeJSON(t, post(t, rs.url+"/v1/completions", string(body)), &stopped)
	c := stopped.Choices[0]
	if want := text[:strings.Index(text, stop)]; c.Text != want || *c.FinishReason != "stop" {
		t.Errorf("with stop %q: %q (%s), want %q (stop)", stop, c.Text, *c.FinishReason, want)
	}
	if c.Logprobs == nil || len(c.Logprobs.Tokens) == 0 || len(c.Logprobs.TopLogprobs[0]) == 0 {
		t.Errorf("logprobs missing: %+v", c.Logprobs)
	}
}
