// Package hfref loads the Hugging Face transformers reference outputs that
// accompany the shared test models (../shared/testdata/models/*/
// reference.safetensors), for the CPU and CUDA end-to-end tests.
package hfref

import (
	"encoding/binary"
	"os"
	"path/filepath"

	"github.com/tokamak-ai/tokamak/engine/weights"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

// Reference is transformers' output for one test model.
type Reference struct {
	// Input is the prompt; Logits are its full-forward logits [len(Input), vocab].
	Input  []int32
	Logits []float32
	// Greedy is the greedy continuation, Margin the top-1 minus top-2 logit
	// at each of its steps.
	Greedy []int32
	Margin []float32
}

// Models returns the folders of the shared test models, failing the test
// when there are none.
func Models(t shareddata.TB) []string {
	t.Helper()
	root := shareddata.Path(t, "models")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("list test models: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no test models under %s", root)
	}
	return dirs
}

// Load reads dir/reference.safetensors.
func Load(t shareddata.TB, dir string) Reference {
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
			out[i] = int32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		}
		return out
	}
	floats := func(name string) []float32 {
		v, err := f.Tensor(name)
		if err != nil {
			t.Fatalf("reference %s: %v", name, err)
		}
		x, err := v.Float32()
		if err != nil {
			t.Fatalf("reference %s: %v", name, err)
		}
		return x
	}
	return Reference{Input: ids("input_ids"), Logits: floats("logits"), Greedy: ids("greedy_ids"), Margin: floats("greedy_margin")}
}
