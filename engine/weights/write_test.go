package weights

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

func randomTensors(r *rand.Rand) []WriteTensor {
	specs := []struct {
		name  string
		dt    backend.DType
		shape []int
	}{
		{"model.embed_tokens.weight", backend.BF16, []int{64, 16}},
		{"model.layers.0.self_attn.q_proj.weight", backend.F16, []int{16, 16}},
		{"model.layers.0.input_layernorm.weight", backend.F32, []int{16}},
		{"model.layers.0.mlp.down_proj.weight", backend.FP8E4M3, []int{16, 40}},
		{"model.layers.0.mlp.down_proj.scales", backend.F32, []int{16}},
		{"ids", backend.I64, []int{5}},
		{"q", backend.I8, []int{3, 3}},
		{"count", backend.I32, []int{}},
		{"empty", backend.BF16, []int{0, 16}},
	}
	var ts []WriteTensor
	for _, s := range specs {
		data := make([]byte, s.dt.Bytes(backend.Numel(s.shape)))
		for i := range data {
			data[i] = byte(r.UintN(256))
		}
		ts = append(ts, WriteTensor{Name: s.name, DType: s.dt, Shape: s.shape, Data: data})
	}
	return ts
}

func checkSet(t *testing.T, s *Set, want []WriteTensor) {
	t.Helper()
	if len(s.Names()) != len(want) {
		t.Fatalf("set has %d tensors, want %d", len(s.Names()), len(want))
	}
	for _, w := range want {
		tv, err := s.Tensor(w.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tv.DType != w.DType || len(tv.Shape) != len(w.Shape) || !bytes.Equal(tv.Bytes(), w.Data) {
			t.Errorf("%s: got %v %v (%d bytes), want %v %v (%d bytes)", w.Name, tv.DType, tv.Shape, len(tv.Bytes()), w.DType, w.Shape, len(w.Data))
		}
		for i := range w.Shape {
			if tv.Shape[i] != w.Shape[i] {
				t.Errorf("%s: shape %v, want %v", w.Name, tv.Shape, w.Shape)
			}
		}
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	ts := randomTensors(rand.New(rand.NewPCG(5, 6)))
	dir := t.TempDir()
	meta := map[string]string{"format": "pt", "note": "ünïcode \"quoted\""}
	if err := WriteFile(filepath.Join(dir, SingleFileName), ts, meta); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSet(t, s, ts)
	if got := s.Files()[0].Metadata(); got["note"] != meta["note"] {
		t.Errorf("metadata %v, want %v", got, meta)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, SingleFileName))
	if (len(raw)-len(ts[0].Data))%8 != 0 && len(raw) < 8 {
		t.Error("short file")
	}
}

func TestWriteShardedRoundTrip(t *testing.T) {
	ts := randomTensors(rand.New(rand.NewPCG(7, 8)))
	dir := t.TempDir()
	names, err := WriteSharded(dir, ts, map[string]string{"format": "pt"}, 2100)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 2 {
		t.Fatalf("wrote %d shards, want several", len(names))
	}
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, w := range ts {
		total += w.Size()
	}
	if idx.Metadata["total_size"] != total || len(idx.WeightMap) != len(ts) {
		t.Errorf("index: total_size %d (want %d), %d entries", idx.Metadata["total_size"], total, len(idx.WeightMap))
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, s, ts)
	if len(s.Files()) != len(names) {
		t.Errorf("opened %d files, wrote %d", len(s.Files()), len(names))
	}
	s.Close()

	// A hostile index: a shard outside the directory, a tensor missing from its shard.
	for _, bad := range []map[string]string{
		{"model.embed_tokens.weight": "../" + names[0]},
		{"not.there": names[0]},
	} {
		raw, _ := json.Marshal(map[string]any{"weight_map": bad})
		os.WriteFile(filepath.Join(dir, IndexFileName), raw, 0o644)
		if _, err := Open(dir); !errors.Is(err, ErrMalformed) {
			t.Errorf("index %v: err %v, want ErrMalformed", bad, err)
		}
	}
	os.WriteFile(filepath.Join(dir, IndexFileName), []byte("{"), 0o644)
	if _, err := Open(dir); !errors.Is(err, ErrMalformed) {
		t.Errorf("broken index JSON: err %v", err)
	}
}

func TestWriteStreamsFillAndReader(t *testing.T) {
	const rows, cols = 2500, 1024 // 5 MB of bf16: more than one Fill chunk
	want := make([]byte, 2*rows*cols+fillChunkBytes/2)
	for i := range want {
		want[i] = byte(i*31 + i>>11)
	}
	fillBytes := int64(2 * rows * cols)
	calls := 0
	ts := []WriteTensor{
		{Name: "filled", DType: backend.BF16, Shape: []int{rows, cols}, Fill: func(dst []byte, off int64) error {
			calls++
			copy(dst, want[off:])
			return nil
		}},
		{Name: "read", DType: backend.I8, Shape: []int{fillChunkBytes / 2}, Reader: bytes.NewReader(want[fillBytes:])},
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, _ := f.Tensor("filled")
	b, _ := f.Tensor("read")
	if !bytes.Equal(a.Bytes(), want[:fillBytes]) || !bytes.Equal(b.Bytes(), want[fillBytes:]) {
		t.Error("streamed bytes differ")
	}
	if calls < 2 {
		t.Errorf("Fill called %d times, want chunked calls", calls)
	}
}

func TestWriteRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		ts   []WriteTensor
	}{
		{"no source", []WriteTensor{{Name: "a", DType: backend.F32, Shape: []int{1}}}},
		{"two sources", []WriteTensor{{Name: "a", DType: backend.F32, Shape: []int{1}, Data: make([]byte, 4), Reader: bytes.NewReader(nil)}}},
		{"short data", []WriteTensor{{Name: "a", DType: backend.F32, Shape: []int{2}, Data: make([]byte, 4)}}},
		{"duplicate", []WriteTensor{{Name: "a", DType: backend.I8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: backend.I8, Shape: []int{1}, Data: []byte{1}}}},
		{"i4 has no encoding", []WriteTensor{{Name: "a", DType: backend.I4, Shape: []int{2}, Data: []byte{1}}}},
		{"short reader", []WriteTensor{{Name: "a", DType: backend.F32, Shape: []int{2}, Reader: bytes.NewReader(make([]byte, 5))}}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "x.safetensors")
		if err := WriteFile(path, c.ts, nil); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: left a file behind", c.name)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`, 16))
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"I8","shape":[2],"data_offsets":[6,8]}}`, 8))
	f.Add(rawFile(`{"a":{"dtype":"F8_E4M3","shape":[],"data_offsets":[0,1]}}`, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := FromBytes("fuzz", buf)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Every accepted tensor must be readable, in bounds, and sized by its shape.
		for _, name := range file.Names() {
			tv, err := file.Tensor(name)
			if err != nil {
				continue // valid dtype the engine does not use
			}
			if len(tv.Bytes()) != tv.DType.Bytes(tv.Numel()) {
				t.Fatalf("%s: %d bytes for %v %v", name, len(tv.Bytes()), tv.DType, tv.Shape)
			}
			if _, err := tv.Float32(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
