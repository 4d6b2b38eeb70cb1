// Command tokbench measures single-threaded encoding throughput of Tokamak's
// tokenizer on a generated English-and-code corpus, writes the corpus and
// the ids it produced so that compare.sh can time Hugging Face tokenizers on
// the same text and check that both give the same ids.
//
//	go run ./bench/tokenizer -out /tmp/tokbench MODEL_DIR...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokamak-ai/tokamak/bench/tokenizer/corpus"
	"github.com/tokamak-ai/tokamak/engine/tokenizer"
)

func main() {
	out := flag.String("out", "tokbench-out", "folder for corpus.txt and <model>.ids.json")
	sizeBytes := flag.Int("size", 4<<20, "corpus size in bytes")
	minSeconds := flag.Float64("seconds", 2, "time each model at least this long")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tokbench [-out DIR] [-size BYTES] MODEL_DIR...")
		os.Exit(2)
	}
	if err := run(*out, *sizeBytes, *minSeconds, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "tokbench:", err)
		os.Exit(1)
	}
}

func run(out string, sizeBytes int, minSeconds float64, models []string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	text := corpus.Generate(sizeBytes)
	if err := os.WriteFile(filepath.Join(out, "corpus.txt"), []byte(text), 0o644); err != nil {
		return err
	}
	for _, dir := range models {
		name := filepath.Base(filepath.Clean(dir))
		start := time.Now()
		tok, err := tokenizer.Load(dir)
		if err != nil {
			return err
		}
		loadSeconds := time.Since(start).Seconds()
		// The first pass fills the word cache, as a serving process's would be.
		coldStart := time.Now()
		ids, err := tok.Encode(text, false)
		if err != nil {
			return err
		}
		cold := time.Since(coldStart).Seconds()
		reps, elapsed := 0, 0.0
		for elapsed < minSeconds || reps < 3 {
			t0 := time.Now()
			if _, err := tok.Encode(text, false); err != nil {
				return err
			}
			elapsed += time.Since(t0).Seconds()
			reps++
		}
		// Serving encodes one request at a time: time the corpus as its
		// blank-line-separated documents too.
		docs := strings.Split(text, "\n\n")
		docStart := time.Now()
		for _, d := range docs {
			if _, err := tok.Encode(d, false); err != nil {
				return err
			}
		}
		perDoc := time.Since(docStart).Seconds()
		mb := float64(len(text)) / 1e6
		fmt.Printf("go     %-8s %8.2f MB/s (first pass %6.2f MB/s, per document %6.2f MB/s over %d docs)  %d tokens  load %.2fs\n",
			name, mb*float64(reps)/elapsed, mb/cold, mb/perDoc, len(docs), len(ids), loadSeconds)
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name+".ids.json"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
