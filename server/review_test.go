package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHugeMaxTokensIsContextError: a max_tokens near the int limit must be
// a 400 context_length_exceeded, not overflow past the context check.
func TestHugeMaxTokensIsContextError(t *testing.T) {
	f := &fakeEngine{}
	_, ts := newFakeServer(t, f, nil, Config{Logger: quiet})
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":[1,2,3],"max_tokens":9223372036854775807}`)
	d := checkErrorBody(t, resp, http.StatusBadRequest, "maximum context length")
	if d.Code == nil || *d.Code != "context_length_exceeded" {
		t.Errorf("code %v, want context_length_exceeded", d.Code)
	}
	if n := f.submitted.Load(); n != 0 {
		t.Errorf("%d requests reached the engine", n)
	}
}

// TestStopNullMeansNoStop: "stop": null (sent by many OpenAI clients) is
// the absence of stop strings, as Stop.UnmarshalJSON documents, not an
// empty stop string.
func TestStopNullMeansNoStop(t *testing.T) {
	_, ts := newFakeServer(t, &fakeEngine{eos: -1}, nil, Config{Logger: quiet})
	resp := post(t, ts.URL+"/v1/completions", `{"prompt":[1,2],"max_tokens":2,"stop":null}`)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, b)
	}
}

// TestWrongTypeNamesTheAPIParam: a type error in a shared sampling field
// names the request's parameter, not the Go struct path it decodes into.
func TestWrongTypeNamesTheAPIParam(t *testing.T) {
	_, ts := newFakeServer(t, &fakeEngine{eos: -1}, fakeTokenizer{}, Config{Logger: quiet})
	for _, tc := range []struct{ path, body, param string }{
		{"/v1/completions", `{"prompt":[1],"temperature":"hot"}`, "temperature"},
		{"/v1/completions", `{"prompt":[1],"seed":18446744073709551615}`, "seed"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, "max_tokens"},
	} {
		d := checkErrorBody(t, post(t, ts.URL+tc.path, tc.body), http.StatusBadRequest, tc.param)
		if d.Param == nil || *d.Param != tc.param {
			t.Errorf("%s: param %v, want %q", tc.body, deref(d.Param), tc.param)
		} else if strings.Contains(d.Message, "SamplingFields") {
			t.Errorf("%s: message %q names the Go struct", tc.body, d.Message)
		}
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestStopConditionsAreBounded: stop strings and stop token ids cost the
// shared engine loop work per generated token, so their size is capped.
func TestStopConditionsAreBounded(t *testing.T) {
	ids := strings.Repeat("1,", maxStopTokenIDs) + "1"
	cases := []struct{ name, body, param string }{
		{"too many stop token ids", `{"prompt":[1,2],"max_tokens":2,"stop_token_ids":[` + ids + `]}`, "stop_token_ids"},
		{"stop string too long", `{"prompt":[1,2],"max_tokens":2,"stop_token_ids":[3],"stop":["` + strings.Repeat("a", maxStopStringBytes+1) + `"]}`, "stop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{}
			_, ts := newFakeServer(t, f, nil, Config{Logger: quiet})
			d := checkErrorBody(t, post(t, ts.URL+"/v1/completions", tc.body), http.StatusBadRequest, "at most")
			if d.Param == nil || *d.Param != tc.param {
				t.Errorf("param %v, want %s", d.Param, tc.param)
			}
			if n := f.submitted.Load(); n != 0 {
				t.Errorf("%d requests reached the engine", n)
			}
		})
	}
}

// TestTricklingBodyIsCutOff: a client that sends part of its body and
// stops is answered (not held) once the body read deadline passes, and
// frees its in-flight slot.
func TestTricklingBodyIsCutOff(t *testing.T) {
	s, ts := newFakeServer(t, &fakeEngine{}, nil, Config{Logger: quiet, BodyReadTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"prompt":[1,2],"max_tokens":2}`
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:5])
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response within 5 s to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("status %d for a stalled body", resp.StatusCode)
	}
	if n := s.InFlight(); n != 0 {
		t.Fatalf("%d requests still in flight", n)
	}
}
