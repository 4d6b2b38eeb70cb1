package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/weights"
	"github.com/tokamak-ai/tokamak/internal/tinymodel"
)

// rewrite copies the tiny model into a new folder, passing every tensor
// through edit (which may drop it by returning false).
func rewrite(t *testing.T, edit func(*weights.WriteTensor) bool) string {
	t.Helper()
	src := t.TempDir()
	if err := tinymodel.Write(src); err != nil {
		t.Fatal(err)
	}
	f, err := weights.OpenFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []weights.WriteTensor
	for _, name := range f.Names() {
		v, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		wt := weights.WriteTensor{Name: name, DType: v.DType, Shape: append([]int(nil), v.Shape...), Data: v.Bytes()}
		if edit(&wt) {
			ts = append(ts, wt)
		}
	}
	dst := t.TempDir()
	if err := weights.WriteFile(filepath.Join(dst, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestLoadRejectsBadCheckpoints(t *testing.T) {
	cases := []struct {
		name string
		edit func(*weights.WriteTensor) bool
		want string
	}{
		{"missing tensor", func(w *weights.WriteTensor) bool { return w.Name != "model.layers.1.mlp.up_proj.weight" }, "model.layers.1.mlp.up_proj.weight"},
		{"missing lm_head", func(w *weights.WriteTensor) bool { return w.Name != "lm_head.weight" }, "lm_head.weight"},
		{"wrong shape", func(w *weights.WriteTensor) bool {
			if w.Name == "model.layers.0.self_attn.k_proj.weight" {
				w.Shape = []int{w.Shape[1], w.Shape[0]}
			}
			return true
		}, "k_proj.weight: shape"},
		{"wrong rank", func(w *weights.WriteTensor) bool {
			if w.Name == "model.norm.weight" {
				w.Shape = []int{1, w.Shape[0]}
			}
			return true
		}, "model.norm.weight: shape"},
		{"integer weight", func(w *weights.WriteTensor) bool {
			if w.Name == "model.layers.0.mlp.down_proj.weight" {
				w.DType = 3 // backend.I32: same bytes, half the elements
				w.Shape = []int{w.Shape[0], w.Shape[1] / 2}
			}
			return true
		}, "down_proj.weight: shape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := rewrite(t, tc.edit)
			_, err := model.Load(dir, cpu.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := model.Load(t.TempDir(), cpu.New()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("empty folder: %v, want an error about config.json", err)
	}
}
