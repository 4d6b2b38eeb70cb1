package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// MaxHeaderBytes bounds the JSON header of a safetensors file (the same
// limit as the reference implementation): a larger claim is treated as a
// corrupt or hostile file rather than allocated.
const MaxHeaderBytes = 100 << 20

// maxDims bounds a tensor's rank; real checkpoints use at most 5.
const maxDims = 16

// ErrMalformed is wrapped by every error about a file's structure (header,
// offsets, shapes), so callers can tell a bad checkpoint from an I/O error.
var ErrMalformed = errors.New("malformed safetensors")

// stDType describes a safetensors dtype string: its element size and the
// backend dtype it maps to (ok false when the backend has none).
type stDType struct {
	size int
	dt   backend.DType
	ok   bool
}

// stDTypes lists every dtype the safetensors format defines, so a header is
// validated even for tensors whose dtype the engine cannot use.
var stDTypes = map[string]stDType{
	"F64":     {8, 0, false},
	"F32":     {4, backend.F32, true},
	"F16":     {2, backend.F16, true},
	"BF16":    {2, backend.BF16, true},
	"I64":     {8, backend.I64, true},
	"U64":     {8, 0, false},
	"I32":     {4, backend.I32, true},
	"U32":     {4, 0, false},
	"I16":     {2, 0, false},
	"U16":     {2, 0, false},
	"I8":      {1, backend.I8, true},
	"U8":      {1, 0, false},
	"BOOL":    {1, 0, false},
	"F8_E4M3": {1, backend.FP8E4M3, true},
	"F8_E5M2": {1, 0, false},
}

// stName returns the safetensors dtype string for a backend dtype.
func stName(dt backend.DType) (string, error) {
	switch dt {
	case backend.F32:
		return "F32", nil
	case backend.BF16:
		return "BF16", nil
	case backend.F16:
		return "F16", nil
	case backend.I32:
		return "I32", nil
	case backend.I64:
		return "I64", nil
	case backend.FP8E4M3:
		return "F8_E4M3", nil
	case backend.I8:
		return "I8", nil
	}
	return "", fmt.Errorf("dtype %v has no safetensors encoding", dt)
}

// tensorInfo is one validated header entry. begin and end are byte offsets
// into the data region (after the header).
type tensorInfo struct {
	name       string
	stDType    string
	shape      []int
	begin, end int64
}

// header is a parsed, validated safetensors header.
type header struct {
	tensors  []tensorInfo // in data order
	metadata map[string]string
	dataOff  int64 // where the data region starts in the file (8 + header length)
}

type rawEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parseFile parses and validates the header of a whole safetensors file
// held in buf. It never reads outside buf and never panics on bad input.
func parseFile(buf []byte) (*header, error) {
	if len(buf) < 8 {
		return nil, malformed("file is %d bytes, shorter than the 8-byte header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderBytes {
		return nil, malformed("header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	}
	if n > uint64(len(buf)-8) {
		return nil, malformed("header length %d runs past the end of the %d-byte file (truncated?)", n, len(buf))
	}
	dataLen := int64(len(buf)) - 8 - int64(n)
	h, err := parseHeader(buf[8:8+n], dataLen)
	if err != nil {
		return nil, err
	}
	h.dataOff = 8 + int64(n)
	return h, nil
}

// parseHeader parses the JSON header js of a file whose data region holds
// dataLen bytes, checking every entry against that region.
func parseHeader(js []byte, dataLen int64) (*header, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed("header is not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, malformed("header is not a JSON object")
	}
	h := &header{}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("header is not JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, malformed("header key %v is not a string", tok)
		}
		if seen[name] {
			return nil, malformed("duplicate header entry %q", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&h.metadata); err != nil {
				return nil, malformed("__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e rawEntry
		if err := dec.Decode(&e); err != nil {
			return nil, malformed("tensor %q: %v", name, err)
		}
		ti, err := checkEntry(name, e, dataLen)
		if err != nil {
			return nil, err
		}
		h.tensors = append(h.tensors, ti)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, malformed("header is not JSON: %v", err)
	}
	// Only padding (spaces) may follow the object.
	rest := js[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " \t\r\n\x00")) != 0 {
		return nil, malformed("trailing bytes after the header object")
	}
	sort.Slice(h.tensors, func(i, j int) bool {
		a, b := h.tensors[i], h.tensors[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		return a.end < b.end
	})
	for i := 1; i < len(h.tensors); i++ {
		prev, cur := h.tensors[i-1], h.tensors[i]
		if cur.begin < prev.end {
			return nil, malformed("tensors %q [%d,%d) and %q [%d,%d) overlap", prev.name, prev.begin, prev.end, cur.name, cur.begin, cur.end)
		}
	}
	return h, nil
}

// checkEntry validates one tensor entry: known dtype, sane shape, offsets
// inside the data region and a byte length equal to numel*size.
func checkEntry(name string, e rawEntry, dataLen int64) (tensorInfo, error) {
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return tensorInfo{}, malformed("tensor %q: needs dtype, shape and data_offsets", name)
	}
	st, ok := stDTypes[*e.DType]
	if !ok {
		return tensorInfo{}, malformed("tensor %q: unknown dtype %q", name, *e.DType)
	}
	if len(*e.Shape) > maxDims {
		return tensorInfo{}, malformed("tensor %q: %d dimensions (max %d)", name, len(*e.Shape), maxDims)
	}
	if len(*e.DataOffsets) != 2 {
		return tensorInfo{}, malformed("tensor %q: data_offsets needs 2 values, has %d", name, len(*e.DataOffsets))
	}
	begin, end := (*e.DataOffsets)[0], (*e.DataOffsets)[1]
	if begin < 0 || end < begin || end > dataLen {
		return tensorInfo{}, malformed("tensor %q: data_offsets [%d,%d) outside the %d-byte data region", name, begin, end, dataLen)
	}
	shape := make([]int, len(*e.Shape))
	numel := uint64(1)
	for i, d := range *e.Shape {
		if d < 0 || uint64(d) > math.MaxInt {
			return tensorInfo{}, malformed("tensor %q: dimension %d is %d", name, i, d)
		}
		hi, lo := bits.Mul64(numel, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return tensorInfo{}, malformed("tensor %q: shape %v overflows", name, *e.Shape)
		}
		numel = lo
		shape[i] = int(d)
	}
	hi, nbytes := bits.Mul64(numel, uint64(st.size))
	if hi != 0 || nbytes != uint64(end-begin) {
		return tensorInfo{}, malformed("tensor %q: shape %v of %s needs %d*%d bytes, data_offsets give %d", name, shape, *e.DType, numel, st.size, end-begin)
	}
	return tensorInfo{name: name, stDType: *e.DType, shape: shape, begin: begin, end: end}, nil
}
