package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServeBenchAndSIGTERM runs `tokamak serve` in-process on a test
// model, drives it with `tokamak bench serve`, then sends the process a
// real SIGTERM during a streamed request: the request completes and serve
// returns nil (exit 0).
func TestServeBenchAndSIGTERM(t *testing.T) {
	dir := shareddata.Path(t, "models", "llama3-gqa")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	served := make(chan error, 1)
	go func() {
		served <- newApp().Run([]string{"tokamak", "serve", "--device", "cpu", "--model", dir, "--port", fmt.Sprint(port),
			"--served-model-name", "gqa", "--kv-cache-gib", "0.05", "--shutdown-grace", "20s"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		select {
		case err := <-served:
			t.Fatalf("serve exited early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	out := t.TempDir()
	report, svg := filepath.Join(out, "r.json"), filepath.Join(out, "r.svg")
	bench := newApp()
	bench.Writer, bench.ErrWriter = io.Discard, io.Discard
	if err := bench.Run([]string{"tokamak", "bench", "serve", "--url", base, "--rate", "50,inf", "--num-prompts", "6",
		"--input-len", "8", "--output-len", "4", "--warmup", "1", "--out", report, "--svg", svg}); err != nil {
		t.Fatalf("bench serve: %v", err)
	}
	var rep struct {
		Model string
		Runs  []struct {
			Completed    int `json:"completed"`
			OutputTokens int `json:"output_tokens"`
		}
	}
	raw, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(raw, &rep) != nil || rep.Model != "gqa" || len(rep.Runs) != 2 ||
		rep.Runs[0].Completed != 6 || rep.Runs[1].OutputTokens != 24 {
		t.Fatalf("report %s: %v", raw, err)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(b), "<svg") {
		t.Fatalf("svg: %v", err)
	}

	resp, err := http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt":[1,2,3],"max_tokens":400,"ignore_eos":true,"stream":true,"return_token_ids":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatal("no first chunk")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ids, done := 0, false
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			done = true
		} else if strings.HasPrefix(line, "data: ") {
			ids += strings.Count(line, `"token_ids":[`)
		}
	}
	if !done || ids < 390 {
		t.Errorf("in-flight request cut by SIGTERM: %d more chunks, done=%v", ids, done)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}
