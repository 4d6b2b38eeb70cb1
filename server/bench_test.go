package server

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkStreamedCompletion measures the server's own cost per streamed
// token (JSON chunk, SSE write, flush, metrics) over a fake engine that
// generates instantly, on a loopback connection.
func BenchmarkStreamedCompletion(b *testing.B) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"ids", `{"prompt":[1,2,3],"max_tokens":60,"stream":true,"return_token_ids":true}`},
		{"ids+logprobs", `{"prompt":[1,2,3],"max_tokens":60,"stream":true,"return_token_ids":true,"logprobs":5}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			_, ts := newFakeServer(b, &fakeEngine{eos: -1}, nil, Config{Logger: quiet})
			defer ts.Close()
			tokens := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(tc.body))
				if err != nil {
					b.Fatal(err)
				}
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "data: {") {
						tokens++
					}
				}
				resp.Body.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(tokens), "ns/token")
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
