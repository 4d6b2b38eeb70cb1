package server

import (
	"bytes"
	"net/http"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies to the request decoders: they
// must never panic, must fail only with a 4xx, and what they accept must
// be within the documented ranges.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"prompt":[1,2,3],"max_tokens":4,"temperature":0.5,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":"hi","stop":["a","b"],"n":2,"logprobs":3,"top_k":-1}`,
		`{"prompt":[[1],[2,3]],"top_p":1,"min_p":0,"seed":-4}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"logprobs":true,"top_logprobs":2}`,
		`{"prompt":`, `[]`, `null`, `{"prompt":[1e99]}`, `{"temperature":NaN}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(g *genParams, e *APIError) {
			if e != nil {
				if e.Status < 400 || e.Status >= 500 || e.Message == "" {
					t.Fatalf("decoder error with status %d message %q", e.Status, e.Message)
				}
				return
			}
			p := g.params
			if p.Temperature < 0 || p.Temperature > 2 || p.TopP <= 0 || p.TopP > 1 || p.MinP < 0 || p.MinP > 1 ||
				p.RepetitionPenalty <= 0 || g.n < 1 || g.n > maxN || g.maxTokens < 0 || p.TopK < 0 ||
				g.topLogprobs < 0 || g.topLogprobs > maxLogprobs {
				t.Fatalf("accepted out-of-range values: %+v", g)
			}
		}
		var c CompletionRequest
		if e := decodeBody(http.MaxBytesReader(nil, nopCloser{bytes.NewReader(body)}, 1<<16), &c); e != nil {
			check(nil, e)
		} else {
			g, e := c.validate(16)
			check(g, e)
			if e == nil {
				for _, ids := range c.Prompt.IDs {
					if len(ids) == 0 {
						t.Fatal("accepted an empty token prompt")
					}
				}
			}
		}
		var ch ChatRequest
		if e := decodeBody(bytes.NewReader(body), &ch); e != nil {
			check(nil, e)
		} else {
			check(ch.validate(0))
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
