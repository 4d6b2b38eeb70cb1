package tinymodel

import (
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/model"
)

func TestTinyModelFollowsItsBigrams(t *testing.T) {
	dir, err := Materialize(t.TempDir() + "/tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir, cpu.New())
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bigram := bigramLogits()
	prompt := []int32{'t', 'h', 'e', ' ', 'm'}
	rows, err := s.Feed(prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	agree := 0
	for i, row := range rows {
		if argmax(row) == argmax(bigram[prompt[i]]) {
			agree++
		}
	}
	if agree < len(prompt)-1 {
		t.Errorf("the model's argmax follows its bigram table at %d of %d positions", agree, len(prompt))
	}
	// Materialize is idempotent.
	if again, err := Materialize(dir); err != nil || again != dir {
		t.Fatalf("second Materialize: %q, %v", again, err)
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
