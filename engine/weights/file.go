// Package weights reads and writes safetensors checkpoints: single files
// and sharded sets (model.safetensors.index.json), memory-mapped so that a
// tensor's bytes are a view of the file, never copied at open.
//
// Every header is validated before any tensor is reachable: the JSON is
// well-formed, every tensor's dtype is known, its shape is non-negative and
// its byte length (computed without overflow) equals its data_offsets span,
// which lies inside the file's data region and overlaps no other tensor. A
// truncated or hostile file gives an error wrapping ErrMalformed; it never
// panics and never reads out of bounds.
package weights

import (
	"fmt"
	"os"
	"sort"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// TensorView is one tensor of an open file: its metadata and a read-only
// view of its bytes. It is valid until the File (or Set) that made it is
// closed; the bytes must not be modified.
type TensorView struct {
	// Name is the tensor's name in the checkpoint.
	Name string
	// DType is the element type.
	DType backend.DType
	// Shape is the row-major shape (empty for a scalar).
	Shape []int
	data  []byte
}

// Bytes returns the tensor's raw little-endian bytes, a view into the
// mapped file (len = DType.Bytes(Numel)).
func (t *TensorView) Bytes() []byte { return t.data }

// Numel returns the number of elements.
func (t *TensorView) Numel() int { return backend.Numel(t.Shape) }

// Float32 returns the tensor converted to float32 (a copy).
func (t *TensorView) Float32() ([]float32, error) {
	v, err := ToFloat32(t.DType, t.data)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return v, nil
}

// File is one open safetensors file. Its methods are safe for concurrent
// use until Close.
type File struct {
	path     string
	buf      []byte
	unmap    func() error
	hdr      *header
	byName   map[string]int // index into hdr.tensors
	metadata map[string]string
}

// OpenFile maps and validates one safetensors file.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open safetensors %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("open safetensors %s: not a regular file", path)
	}
	buf, unmap, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("open safetensors %s: %w", path, err)
	}
	file, err := newFile(path, buf, unmap)
	if err != nil {
		unmap()
		return nil, err
	}
	return file, nil
}

// FromBytes validates a safetensors file held in memory (for example one
// embedded in the binary). buf must not be modified while the File is used.
func FromBytes(name string, buf []byte) (*File, error) {
	return newFile(name, buf, func() error { return nil })
}

func newFile(path string, buf []byte, unmap func() error) (*File, error) {
	h, err := parseFile(buf)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	f := &File{path: path, buf: buf, unmap: unmap, hdr: h, metadata: h.metadata, byName: make(map[string]int, len(h.tensors))}
	for i, t := range h.tensors {
		f.byName[t.name] = i
	}
	return f, nil
}

// Path returns the file's path (or the name given to FromBytes).
func (f *File) Path() string { return f.path }

// Metadata returns the header's __metadata__ map (may be nil); callers
// must not modify it.
func (f *File) Metadata() map[string]string { return f.metadata }

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.hdr.tensors))
	for _, t := range f.hdr.tensors {
		names = append(names, t.name)
	}
	sort.Strings(names)
	return names
}

// Has reports whether the file holds a tensor of that name.
func (f *File) Has(name string) bool { _, ok := f.byName[name]; return ok }

// Tensor returns a view of the named tensor. Tensors whose safetensors
// dtype has no backend equivalent (F64, U8, BOOL, ...) give an error.
func (f *File) Tensor(name string) (*TensorView, error) {
	if f.unmap == nil {
		return nil, fmt.Errorf("safetensors %s: file is closed", f.path)
	}
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors %s: no tensor %q", f.path, name)
	}
	t := f.hdr.tensors[i]
	st := stDTypes[t.stDType]
	if !st.ok {
		return nil, fmt.Errorf("safetensors %s: tensor %q has dtype %s, which the engine does not support", f.path, name, t.stDType)
	}
	off := f.hdr.dataOff
	return &TensorView{
		Name:  name,
		DType: st.dt,
		Shape: append([]int(nil), t.shape...),
		data:  f.buf[off+t.begin : off+t.end : off+t.end],
	}, nil
}

// Close releases the mapping; views obtained from the file become invalid.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.buf = nil, nil
	if err != nil {
		return fmt.Errorf("close safetensors %s: %w", f.path, err)
	}
	return nil
}
