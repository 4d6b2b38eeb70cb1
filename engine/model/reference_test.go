package model_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/internal/hfref"
)

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
	for _, dir := range hfref.Models(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ref := hfref.Load(t, dir)
			m, err := model.Load(dir, cpu.New())
			if err != nil {
				t.Fatal(err)
			}
			vocab := m.Config.VocabSize
			if len(ref.Logits) != len(ref.Input)*vocab {
				t.Fatalf("reference logits hold %d values, want %d×%d", len(ref.Logits), len(ref.Input), vocab)
			}

			s, err := m.NewSession(len(ref.Input) + len(ref.Greedy))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rows, err := s.Feed(ref.Input, true)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 0, len(ref.Logits))
			for _, r := range rows {
				got = append(got, r...)
			}
			if e := relErr(got, ref.Logits); e > 1e-4 {
				t.Errorf("full-prompt logits: relative error %.3g > 1e-4", e)
			}

			// Greedy continuation one token at a time through the cache.
			next := argmax(rows[len(rows)-1])
			for i, want := range ref.Greedy {
				if next != want {
					t.Fatalf("greedy token %d: got %d, want %d (so far %v)", i, next, want, ref.Greedy[:i])
				}
				if i == len(ref.Greedy)-1 {
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
