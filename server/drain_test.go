package server

import (
	"context"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe runs s.Serve on a loopback port until ctx is done; the
// returned channel yields Serve's result.
func startServe(t *testing.T, s *Server, ctx context.Context, grace time.Duration) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, grace) }()
	return "http://" + ln.Addr().String(), done
}

// drainCheck starts a long streamed request, triggers shutdown with
// trigger, and checks that the request completes while new ones get 503,
// and that Serve returns nil.
func drainCheck(t *testing.T, s *Server, url string, done <-chan error, trigger func(), body string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "request in flight", func() bool { return s.InFlight() == 1 })
	trigger()
	waitFor(t, "draining", func() bool { return s.draining.Load() })
	checkErrorBody(t, post(t, url+"/v1/completions", `{"prompt":[1]}`), 503, "shutting down")
	if r, err := http.Get(url + "/health"); err != nil || r.StatusCode != 503 {
		t.Errorf("health during drain: %v %v", r, err)
	}
	sc := collectCompletionStream(t, readSSE(t, resp))
	if sc.finish[0] != "length" || len(sc.ids) == 0 && sc.text[0] == "" {
		t.Errorf("in-flight request did not finish normally: %+v", sc)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after drain")
	}
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	f := &fakeEngine{eos: -1, stepDelay: 5 * time.Millisecond}
	s, _ := newFakeServer(t, f, nil, Config{Logger: quiet})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	url, done := startServe(t, s, ctx, 10*time.Second)
	drainCheck(t, s, url, done, func() {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}, `{"prompt":[1],"max_tokens":40,"stream":true}`)
}

func TestDrainGraceExpiryCancels(t *testing.T) {
	f := &fakeEngine{eos: -1, stepDelay: 100 * time.Millisecond}
	s, _ := newFakeServer(t, f, nil, Config{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	url, done := startServe(t, s, ctx, 100*time.Millisecond)
	go func() {
		if resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":[1],"max_tokens":60}`)); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "request in flight", func() bool { return s.InFlight() == 1 })
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after grace")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("drain took %v with a 100ms grace", d)
	}
	waitFor(t, "engine request cancelled", func() bool { return f.active.Load() == 0 })
}
