package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.Run(append([]string{"tokamak"}, args...))
	return out.String(), errOut.String(), err
}

func joinIDs(ids []int, sep string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, sep)
}

// TestGenerateIDsMatchesReference is the acceptance command:
// greedy ids from the CLI equal transformers' greedy continuation.
func TestGenerateIDsMatchesReference(t *testing.T) {
	for _, name := range []string{"llama3-gqa", "qwen3-qknorm"} {
		t.Run(name, func(t *testing.T) {
			dir := shareddata.Path(t, "models", name)
			raw, err := os.ReadFile(filepath.Join(dir, "reference.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				InputIDs  []int `json:"input_ids"`
				GreedyIDs []int `json:"greedy_ids"`
			}
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := runCLI(t, "generate", "--model", dir, "--device", "cpu",
				"--prompt-ids", joinIDs(ref.InputIDs, ","), "--max-tokens", strconv.Itoa(len(ref.GreedyIDs)),
				"--temperature", "0", "--output", "ids", "--ignore-eos")
			if err != nil {
				t.Fatalf("generate: %v\n%s", err, errOut)
			}
			if want := joinIDs(ref.GreedyIDs, " ") + "\n"; out != want {
				t.Fatalf("stdout %q, want %q", out, want)
			}
			if !strings.Contains(errOut, fmt.Sprintf("generated %d tokens", len(ref.GreedyIDs))) || !strings.Contains(errOut, "time to first token") {
				t.Errorf("summary line missing: %q", errOut)
			}
		})
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	dir := shareddata.Path(t, "models", "llama3-gqa")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no prompt", []string{"generate", "--model", dir, "--device", "cpu"}, "give --prompt"},
		{"bad id", []string{"generate", "--model", dir, "--device", "cpu", "--prompt-ids", "1,x"}, "bad token id"},
		{"id outside vocab", []string{"generate", "--model", dir, "--device", "cpu", "--prompt-ids", "1,99999", "--output", "ids"}, "outside vocabulary"},
		{"text without tokenizer", []string{"generate", "--model", dir, "--device", "cpu", "--prompt", "hi"}, "no tokenizer"},
		{"bad device", []string{"generate", "--model", dir, "--device", "tpu", "--prompt-ids", "1", "--output", "ids"}, "unknown --device"},
		{"bad temperature", []string{"generate", "--model", dir, "--device", "cpu", "--prompt-ids", "1", "--output", "ids", "--temperature", "-1"}, "temperature"},
		{"missing model", []string{"generate", "--model", t.TempDir(), "--device", "cpu", "--prompt-ids", "1", "--output", "ids"}, "config.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestGenerateEmbeddedModelText(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", "")
	out, errOut, err := runCLI(t, "generate", "--device", "cpu", "--prompt", "The engine", "--max-tokens", "16", "--seed", "7")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, errOut)
	}
	if strings.TrimSpace(out) == "" {
		t.Fatalf("no text generated; stderr %q", errOut)
	}
	again, _, err := runCLI(t, "generate", "--device", "cpu", "--prompt", "The engine", "--max-tokens", "16", "--seed", "7")
	if err != nil || again != out {
		t.Fatalf("same seed gave %q then %q (%v)", out, again, err)
	}
}

func TestBenchThroughputRuns(t *testing.T) {
	dir := shareddata.Path(t, "models", "llama3-gqa")
	report := filepath.Join(t.TempDir(), "tp.json")
	out, errOut, err := runCLI(t, "bench", "throughput", "--model", dir, "--device", "cpu",
		"--input-len", "20", "--output-len", "8", "--num-prompts", "12", "--max-num-seqs", "4", "--out", report)
	if err != nil {
		t.Fatalf("bench throughput: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "output tokens/s") {
		t.Fatalf("no summary: %q", out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Requests         int     `json:"requests"`
		OutputTokensPerS float64 `json:"output_tokens_per_s"`
		Steps            int64   `json:"steps"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	// 12 requests, at most 4 at a time, 8 tokens each: at least 3 waves of 8 decode steps.
	if res.Requests != 12 || res.OutputTokensPerS <= 0 || res.Steps < 24 {
		t.Fatalf("report %+v", res)
	}
}
