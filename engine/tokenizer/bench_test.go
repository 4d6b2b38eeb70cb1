package tokenizer

import (
	"testing"

	"github.com/tokamak-ai/tokamak/bench/tokenizer/corpus"
)

// BenchmarkEncode measures single-threaded encoding throughput over a 1 MB
// English-and-code corpus, in MB/s, with a warm word cache as in serving.
func BenchmarkEncode(b *testing.B) {
	toks, _ := fixtures(b)
	text := corpus.Generate(1 << 20)
	for _, n := range refNames {
		b.Run(n, func(b *testing.B) {
			tk := toks[n]
			b.SetBytes(int64(len(text)))
			var ids []int32
			for b.Loop() {
				var err error
				ids, err = tk.Encode(text, false)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(text))/float64(len(ids)), "bytes/token")
		})
	}
}

// BenchmarkDecodeStream measures incremental detokenization per token.
func BenchmarkDecodeStream(b *testing.B) {
	toks, _ := fixtures(b)
	text := corpus.Generate(64 << 10)
	for _, n := range refNames {
		b.Run(n, func(b *testing.B) {
			ids, _ := toks[n].Encode(text, false)
			for b.Loop() {
				d := toks[n].NewStreamDecoder()
				for _, id := range ids {
					d.Add(id)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/token")
		})
	}
}

// BenchmarkChatTemplate measures rendering the qwen3 template.
func BenchmarkChatTemplate(b *testing.B) {
	toks, _ := fixtures(b)
	msgs := []Message{{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Tell me a joke."}}
	for b.Loop() {
		if _, err := toks["qwen3"].ApplyChatTemplate(msgs, ChatOptions{AddGenerationPrompt: true}); err != nil {
			b.Fatal(err)
		}
	}
}
