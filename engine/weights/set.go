package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Standard file names of a Hugging Face checkpoint directory.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Set is a checkpoint: one or more safetensors files whose tensor names
// are unique across files. Its methods are safe for concurrent use until
// Close.
type Set struct {
	files  []*File
	byName map[string]*File
}

// Open opens the checkpoint in dir: model.safetensors if present, else the
// shards listed by model.safetensors.index.json, else the directory's only
// *.safetensors file.
func Open(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		f, err := OpenFile(single)
		if err != nil {
			return nil, err
		}
		return NewSet(f)
	}
	index := filepath.Join(dir, IndexFileName)
	if _, err := os.Stat(index); err == nil {
		return openIndex(dir, index)
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("open weights %s: %w", dir, err)
	}
	if len(matches) != 1 {
		return nil, fmt.Errorf("open weights %s: no %s or %s (and %d other .safetensors files)", dir, SingleFileName, IndexFileName, len(matches))
	}
	f, err := OpenFile(matches[0])
	if err != nil {
		return nil, err
	}
	return NewSet(f)
}

// index is the part of model.safetensors.index.json that locates tensors.
type index struct {
	WeightMap map[string]string `json:"weight_map"`
}

func openIndex(dir, path string) (*Set, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open weights: %w", err)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("open weights %s: %w: %v", path, ErrMalformed, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("open weights %s: %w: empty weight_map", path, ErrMalformed)
	}
	shards := make(map[string]*File)
	var files []*File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	names := make([]string, 0, len(idx.WeightMap))
	for name := range idx.WeightMap {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		shard := idx.WeightMap[name]
		if !filepath.IsLocal(shard) || filepath.Base(shard) != shard {
			closeAll()
			return nil, fmt.Errorf("open weights %s: %w: tensor %q in shard %q outside the directory", path, ErrMalformed, name, shard)
		}
		f, ok := shards[shard]
		if !ok {
			f, err = OpenFile(filepath.Join(dir, shard))
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("open weights %s: %w", path, err)
			}
			shards[shard] = f
			files = append(files, f)
		}
		if !f.Has(name) {
			closeAll()
			return nil, fmt.Errorf("open weights %s: %w: tensor %q not in its shard %s", path, ErrMalformed, name, shard)
		}
	}
	s, err := NewSet(files...)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("open weights %s: %w", path, err)
	}
	return s, nil
}

// NewSet combines open files into a Set, which takes ownership of them
// (Set.Close closes them). A tensor name present in two files is an error.
func NewSet(files ...*File) (*Set, error) {
	s := &Set{files: files, byName: make(map[string]*File)}
	for _, f := range files {
		for _, t := range f.hdr.tensors {
			if other, dup := s.byName[t.name]; dup {
				return nil, fmt.Errorf("%w: tensor %q in both %s and %s", ErrMalformed, t.name, other.path, f.path)
			}
			s.byName[t.name] = f
		}
	}
	return s, nil
}

// Tensor returns a view of the named tensor (see File.Tensor).
func (s *Set) Tensor(name string) (*TensorView, error) {
	f, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("weights: no tensor %q", name)
	}
	return f.Tensor(name)
}

// Has reports whether the set holds a tensor of that name.
func (s *Set) Has(name string) bool { _, ok := s.byName[name]; return ok }

// Names returns every tensor name, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Files returns the set's files in the order they were opened.
func (s *Set) Files() []*File { return s.files }

// Close closes every file of the set.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
