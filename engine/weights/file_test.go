package weights

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/internal/shareddata"
)

// rawFile builds a safetensors file from a literal header and data length.
func rawFile(hdr string, data int) []byte {
	b := make([]byte, 8+len(hdr)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(hdr)))
	copy(b[8:], hdr)
	return b
}

func TestMalformedFilesGiveClearErrors(t *testing.T) {
	good := `{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`
	withLen := func(n uint64, rest string) []byte {
		b := make([]byte, 8+len(rest))
		binary.LittleEndian.PutUint64(b, n)
		copy(b[8:], rest)
		return b
	}
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "shorter than the 8-byte"},
		{"truncated length", []byte{1, 2, 3}, "shorter than the 8-byte"},
		{"header length beyond file", withLen(1000, good), "runs past the end"},
		{"absurd header length", withLen(1<<62, good), "exceeds the"},
		{"truncated data", rawFile(good, 15), "outside the 15-byte data region"},
		{"header claims more bytes than file", rawFile(`{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}`, 16), "outside"},
		{"non-JSON", rawFile(`not json at all`, 0), "not JSON"},
		{"JSON array", rawFile(`[1,2]`, 0), "not a JSON object"},
		{"truncated JSON", rawFile(`{"a":{"dtype":"F32"`, 0), "tensor \"a\""},
		{"trailing garbage", rawFile(good+`xyz`, 16), "trailing bytes"},
		{"bad dtype", rawFile(`{"a":{"dtype":"F12","shape":[4],"data_offsets":[0,16]}}`, 16), "unknown dtype \"F12\""},
		{"missing dtype", rawFile(`{"a":{"shape":[4],"data_offsets":[0,16]}}`, 16), "needs dtype"},
		{"shape/byte mismatch", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}`, 16), "needs 3*4 bytes"},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}`, 16), "dimension 0 is -4"},
		{"fractional dim", rawFile(`{"a":{"dtype":"F32","shape":[4.5],"data_offsets":[0,16]}}`, 16), "tensor \"a\""},
		{"huge dims overflow", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}`, 16), "overflows"},
		{"bytes overflow", rawFile(`{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}`, 16), "needs"},
		{"dim beyond int64", rawFile(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,16]}}`, 16), "tensor \"a\""},
		{"negative offset", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}}`, 16), "outside"},
		{"reversed offsets", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}`, 16), "outside"},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8,16]}}`, 16), "needs 2 values"},
		{"overlapping offsets", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 16), "overlap"},
		{"duplicate names", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 16), "duplicate"},
		{"metadata not strings", rawFile(`{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 16), "__metadata__"},
		{"too many dims", rawFile(`{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}`, 16), "dimensions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := FromBytes("case", c.file)
			if err == nil {
				t.Fatalf("accepted: %v", f.Names())
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestWellFormedEdgeCases(t *testing.T) {
	cases := []struct {
		name  string
		file  []byte
		names []string
	}{
		{"no tensors", rawFile(`{}`, 0), []string{}},
		{"metadata only", rawFile(`{"__metadata__":{"format":"pt"}}  `, 0), []string{}},
		{"scalar and empty", rawFile(`{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"BF16","shape":[0,7],"data_offsets":[8,8]}}`, 8), []string{"e", "s"}},
		{"unsupported but valid dtype", rawFile(`{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`, 3), []string{"b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := FromBytes("case", c.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); strings.Join(got, ",") != strings.Join(c.names, ",") {
				t.Errorf("names %v, want %v", got, c.names)
			}
		})
	}
	f, _ := FromBytes("case", rawFile(`{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`, 3))
	if _, err := f.Tensor("b"); err == nil || !strings.Contains(err.Error(), "BOOL") {
		t.Errorf("BOOL tensor: err %v, want a clear unsupported-dtype error", err)
	}
	if _, err := f.Tensor("zz"); err == nil {
		t.Error("missing tensor gave no error")
	}
}

func TestOpenFileTruncatedOnDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	data, _ := FromFloat32(backend.F32, make([]float32, 1024))
	if err := WriteFile(path, []WriteTensor{{Name: "w", DType: backend.F32, Shape: []int{32, 32}, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)
	for _, n := range []int{0, 5, 8, 40, len(full) - 1} {
		os.WriteFile(path, full[:n], 0o644)
		if _, err := OpenFile(path); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated to %d bytes: err %v, want ErrMalformed", n, err)
		}
	}
	if _, err := OpenFile(filepath.Join(dir, "absent.safetensors")); err == nil {
		t.Error("absent file opened")
	}
	if _, err := Open(filepath.Join(dir, "nothing-here")); err == nil {
		t.Error("empty directory opened")
	}
}

func TestRealCheckpoints(t *testing.T) {
	cases := []struct {
		model  string
		dtype  backend.DType
		embed  []int
		layers int
	}{
		{"llama3-gqa", backend.BF16, []int{512, 128}, 2},
		{"qwen2-bias-tied", backend.BF16, nil, 3},
		{"qwen3-qknorm", backend.BF16, nil, 0},
		{"mistral-f16", backend.F16, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			dir := shareddata.Path(t, "models", c.model)
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			emb, err := s.Tensor("model.embed_tokens.weight")
			if err != nil {
				t.Fatal(err)
			}
			if emb.DType != c.dtype || len(emb.Shape) != 2 {
				t.Errorf("embedding %v %v, want %v 2-D", emb.DType, emb.Shape, c.dtype)
			}
			if c.embed != nil && (emb.Shape[0] != c.embed[0] || emb.Shape[1] != c.embed[1]) {
				t.Errorf("embedding shape %v, want %v", emb.Shape, c.embed)
			}
			if c.layers > 0 && !s.Has("model.layers."+strconv.Itoa(c.layers-1)+".mlp.down_proj.weight") || s.Has("model.layers.99.mlp.down_proj.weight") {
				t.Errorf("layer tensors: %v", s.Names())
			}
			var total int
			for _, name := range s.Names() {
				tv, err := s.Tensor(name)
				if err != nil {
					t.Fatal(err)
				}
				if len(tv.Bytes()) != tv.DType.Bytes(tv.Numel()) {
					t.Fatalf("%s: %d bytes for %v %v", name, len(tv.Bytes()), tv.DType, tv.Shape)
				}
				v, err := tv.Float32()
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range v {
					if x != x || x > 1e4 || x < -1e4 {
						t.Fatalf("%s: implausible weight %v", name, x)
					}
				}
				total += len(tv.Bytes())
			}
			fi, _ := os.Stat(filepath.Join(dir, SingleFileName))
			if int64(total) > fi.Size() || int64(total) < fi.Size()-64<<10 {
				t.Errorf("tensors hold %d bytes of a %d-byte file", total, fi.Size())
			}
			ref, err := OpenFile(filepath.Join(dir, "reference.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			logits, err := ref.Tensor("logits")
			if err != nil {
				t.Fatal(err)
			}
			ids, _ := ref.Tensor("input_ids")
			if logits.DType != backend.F32 || ids.DType != backend.I64 || logits.Shape[0] != ids.Shape[0] || logits.Shape[1] != emb.Shape[0] {
				t.Errorf("reference: logits %v %v, input_ids %v %v", logits.DType, logits.Shape, ids.DType, ids.Shape)
			}
		})
	}
}
