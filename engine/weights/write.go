package weights

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// fillChunkBytes is the size of the buffer Fill is called with.
const fillChunkBytes = 4 << 20

// WriteTensor is one tensor to write. Exactly one of Data, Reader and Fill
// supplies its DType.Bytes(Numel(Shape)) bytes, so a multi-GB checkpoint
// can be generated without holding it in memory.
type WriteTensor struct {
	Name  string
	DType backend.DType
	Shape []int
	// Data holds the raw little-endian bytes.
	Data []byte
	// Reader yields exactly the tensor's bytes.
	Reader io.Reader
	// Fill is called repeatedly with consecutive chunks of the tensor;
	// offset is the chunk's byte offset within the tensor. It must fill all
	// of dst.
	Fill func(dst []byte, offset int64) error
}

// Size returns the tensor's size in bytes.
func (t *WriteTensor) Size() int64 {
	return int64(t.DType.Bytes(backend.Numel(t.Shape)))
}

func (t *WriteTensor) check() error {
	n := 0
	if t.Data != nil {
		n++
	}
	if t.Reader != nil {
		n++
	}
	if t.Fill != nil {
		n++
	}
	if n != 1 {
		return fmt.Errorf("tensor %q: set exactly one of Data, Reader, Fill", t.Name)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in %v", t.Name, t.Shape)
		}
	}
	if t.Data != nil && int64(len(t.Data)) != t.Size() {
		return fmt.Errorf("tensor %q: %d bytes of data for shape %v of %v (want %d)", t.Name, len(t.Data), t.Shape, t.DType, t.Size())
	}
	_, err := stName(t.DType)
	return err
}

// encodeHeader builds the JSON header, padded with spaces to a multiple
// of 8 bytes so the data region is aligned.
func encodeHeader(tensors []WriteTensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		b.WriteString(`"__metadata__":`)
		b.Write(m)
	}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for i := range tensors {
		t := &tensors[i]
		if err := t.check(); err != nil {
			return nil, err
		}
		if seen[t.Name] || t.Name == "__metadata__" {
			return nil, fmt.Errorf("tensor name %q repeated or reserved", t.Name)
		}
		seen[t.Name] = true
		st, _ := stName(t.DType)
		name, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sh, _ := json.Marshal(shape)
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, name, st, sh, off, off+t.Size())
		off += t.Size()
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// WriteFile writes tensors (in the given order) as one safetensors file,
// streaming their bytes. It writes to a temporary file beside path and
// renames it into place, so a failed write leaves no partial checkpoint.
func WriteFile(path string, tensors []WriteTensor, metadata map[string]string) (err error) {
	hdr, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	w.Write(lenBuf[:])
	w.Write(hdr)
	var chunk []byte
	for i := range tensors {
		t := &tensors[i]
		if err := writeData(w, t, &chunk); err != nil {
			return fmt.Errorf("write %s: tensor %q: %w", path, t.Name, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeData(w *bufio.Writer, t *WriteTensor, chunk *[]byte) error {
	size := t.Size()
	switch {
	case t.Data != nil:
		_, err := w.Write(t.Data)
		return err
	case t.Reader != nil:
		n, err := io.CopyN(w, t.Reader, size)
		if err != nil {
			return fmt.Errorf("reader gave %d of %d bytes: %w", n, size, err)
		}
		return nil
	}
	if *chunk == nil {
		*chunk = make([]byte, fillChunkBytes)
	}
	for off := int64(0); off < size; {
		n := min(int64(len(*chunk)), size-off)
		buf := (*chunk)[:n]
		if err := t.Fill(buf, off); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// WriteSharded writes tensors into dir as shards of at most maxShardBytes
// of tensor data each (a larger tensor gets a shard of its own), named
// model-0000i-of-0000n.safetensors, plus model.safetensors.index.json.
// It returns the shard file names.
func WriteSharded(dir string, tensors []WriteTensor, metadata map[string]string, maxShardBytes int64) ([]string, error) {
	if maxShardBytes <= 0 {
		return nil, fmt.Errorf("write sharded %s: shard size %d", dir, maxShardBytes)
	}
	var groups [][]WriteTensor
	var cur int64
	var total int64
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if seen[t.Name] {
			return nil, fmt.Errorf("write sharded %s: tensor name %q repeated", dir, t.Name)
		}
		seen[t.Name] = true
		sz := t.Size()
		if len(groups) == 0 || (cur+sz > maxShardBytes && cur > 0) {
			groups = append(groups, nil)
			cur = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		cur += sz
		total += sz
	}
	weightMap := make(map[string]string, len(tensors))
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		if err := WriteFile(filepath.Join(dir, names[i]), g, metadata); err != nil {
			return nil, err
		}
		for _, t := range g {
			weightMap[t.Name] = names[i]
		}
	}
	idx := struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]any{"total_size": total}, weightMap}
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write sharded %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), append(raw, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write sharded %s: %w", dir, err)
	}
	return names, nil
}
