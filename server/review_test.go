package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
