package model_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/weights"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

// reference is the Hugging Face transformers output for one test model.
type reference struct {
	input  []int32
	logits []float32 // [T, vocab]
	greedy []int32
}

func loadReference(t *testing.T, dir string) reference {
	t.Helper()
	f, err := weights.OpenFile(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatalf("open reference: %v", err)
	}
	defer f.Close()
	ids := func(name string) []int32 {
		v, err := f.Tensor(name)
		if err != nil {
			t.Fatalf("reference %s: %v", name, err)
		}
		raw := v.Bytes()
		out := make([]int32, len(raw)/8)
		for i := range out {
			var x int64
			for b := 7; b >= 0; b-- {
				x = x<<8 | int64(raw[8*i+b])
			}
			out[i] = int32(x)
		}
		return out
	}
	lv, err := f.Tensor("logits")
	if err != nil {
		t.Fatalf("reference logits: %v", err)
	}
	logits, err := lv.Float32()
	if err != nil {
		t.Fatalf("reference logits: %v", err)
	}
	return reference{input: ids("input_ids"), logits: logits, greedy: ids("greedy_ids")}
}

// TestModels lists the shared test models; it fails if there are none.
func testModels(t *testing.T) []string {
	t.Helper()
	root := shareddata.Path(t, "models")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no models under %s", root)
	}
	return dirs
}

func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func TestForwardMatchesHuggingFace(t *testing.T) {
	for _, dir := range testModels(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ref := loadReference(t, dir)
			m, err := model.Load(dir, cpu.New())
			if err != nil {
				t.Fatal(err)
			}
			vocab := m.Config.VocabSize
			if len(ref.logits) != len(ref.input)*vocab {
				t.Fatalf("reference logits hold %d values, want %d×%d", len(ref.logits), len(ref.input), vocab)
			}

			s, err := m.NewSession(len(ref.input) + len(ref.greedy))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.Feed(ref.input, true)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 0, len(ref.logits))
			for _, r := range rows {
				got = append(got, r...)
			}
			if e := relErr(got, ref.logits); e > 1e-4 {
				t.Errorf("full-prompt logits: relative error %.3g > 1e-4", e)
			}

			// Greedy continuation one token at a time through the cache.
			next := argmax(rows[len(rows)-1])
			for i, want := range ref.greedy {
				if next != want {
					t.Fatalf("greedy token %d: got %d, want %d (so far %v)", i, next, want, ref.greedy[:i])
				}
				if i == len(ref.greedy)-1 {
					break
				}
				out, err := s.Feed([]int32{next}, false)
				if err != nil {
					t.Fatal(err)
				}
				next = argmax(out[0])
			}
		})
	}
}
