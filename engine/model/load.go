package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// layer holds one decoder layer's weights on the backend. q/k/v are fused
// into one projection (q rows, then k rows, then v rows) and gate/up into
// another, so each is one GEMM.
type layer struct {
	inNorm, postNorm backend.Tensor
	qNorm, kNorm     backend.Tensor
	qkv, o           *backend.Weight
	gateUp, down     *backend.Weight
}

// Model is a Llama-family decoder bound to a backend.
type Model struct {
	// Config is the parsed config.json.
	Config *Config

	b       backend.Backend
	embed   *backend.Weight
	lmHead  *backend.Weight
	norm    backend.Tensor
	layers  []layer
	rope    *backend.RoPE
	tensors []backend.Tensor
	// WeightBytes is the size of the weights on the backend.
	WeightBytes int64
	// fuseRows is the most rows a step may have for the forward to fold
	// RMSNorms and residual adds into the projections (backend.FusedLinear);
	// 0 turns the fusions off.
	fuseRows int
}

// setFuseRows sets fuseRows from what the backend can fuse for every
// projection that the fused forward touches.
func (m *Model) setFuseRows() {
	f, ok := m.b.(backend.FusedLinear)
	if !ok || os.Getenv("TOKAMAK_NO_FUSED_LINEAR") != "" {
		m.fuseRows = 0
		return
	}
	rows := f.FusedLinearRows(m.lmHead, true)
	for i := range m.layers {
		ly := &m.layers[i]
		rows = min(rows, f.FusedLinearRows(ly.qkv, true), f.FusedLinearRows(ly.gateUp, true),
			f.FusedLinearRows(ly.o, false), f.FusedLinearRows(ly.down, false))
	}
	m.fuseRows = rows
}

// Load reads config.json and the safetensors weights of dir and uploads
// them to b.
func Load(dir string, b backend.Backend) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := weights.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer set.Close()
	m, err := New(cfg, set, b)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	return m, nil
}

// Source is where New reads named tensors from (a *weights.Set).
type Source interface {
	Tensor(name string) (*weights.TensorView, error)
	Has(name string) bool
}

// loader uploads checkpoint tensors, checking names and shapes.
type loader struct {
	src Source
	b   backend.Backend
	m   *Model
}

func (l *loader) view(name string, shape ...int) (*weights.TensorView, error) {
	v, err := l.src.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	if len(v.Shape) != len(shape) {
		return nil, fmt.Errorf("tensor %s: shape %v, want %v", name, v.Shape, shape)
	}
	for i := range shape {
		if v.Shape[i] != shape[i] {
			return nil, fmt.Errorf("tensor %s: shape %v, want %v", name, v.Shape, shape)
		}
	}
	return v, nil
}

func (l *loader) upload(dt backend.DType, shape []int, data []byte) (backend.Tensor, error) {
	t, err := l.b.Upload(dt, shape, data)
	if err != nil {
		return nil, err
	}
	l.m.tensors = append(l.m.tensors, t)
	l.m.WeightBytes += int64(len(data))
	return t, nil
}

// vector uploads a 1-D tensor (norm weight, bias) as float32.
func (l *loader) vector(name string, n int) (backend.Tensor, error) {
	v, err := l.view(name, n)
	if err != nil {
		return nil, err
	}
	f, err := weights.ToFloat32(v.DType, v.Bytes())
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	return l.upload(backend.F32, []int{n}, f32Bytes(f))
}

// matrix uploads the row-wise concatenation of 2-D tensors as one weight.
// The checkpoint dtype is kept, except that F16 becomes BF16 on a backend
// whose activations are BF16 (the kernels take one 16-bit format).
func (l *loader) matrix(cols int, names []string, rows []int) (*backend.Weight, error) {
	var data []byte
	var dt backend.DType
	total := 0
	for i, name := range names {
		v, err := l.view(name, rows[i], cols)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			dt = v.DType
		} else if v.DType != dt {
			return nil, fmt.Errorf("tensor %s: dtype %s differs from %s's %s", name, v.DType, names[0], dt)
		}
		if len(names) == 1 {
			data = v.Bytes()
		} else {
			data = append(data, v.Bytes()...)
		}
		total += rows[i]
	}
	switch dt {
	case backend.BF16, backend.F32:
	case backend.F16:
		if l.b.ActivationDType() == backend.BF16 {
			f, err := weights.ToFloat32(dt, data)
			if err != nil {
				return nil, err
			}
			if data, err = weights.FromFloat32(backend.BF16, f); err != nil {
				return nil, err
			}
			dt = backend.BF16
		}
	default:
		return nil, fmt.Errorf("tensor %s: dtype %s not supported for weights", names[0], dt)
	}
	t, err := l.upload(dt, []int{total, cols}, data)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", names[0], err)
	}
	return &backend.Weight{Data: t, Rows: total, Cols: cols}, nil
}

func f32Bytes(f []float32) []byte {
	out := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// New binds a checkpoint's tensors to a backend.
func New(cfg *Config, src Source, b backend.Backend) (_ *Model, err error) {
	m := &Model{Config: cfg, b: b}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	l := &loader{src: src, b: b, m: m}
	h, hd := cfg.HiddenSize, cfg.HeadDim
	hq, hkv := cfg.NumAttentionHeads, cfg.NumKeyValueHeads
	if m.embed, err = l.matrix(h, []string{"model.embed_tokens.weight"}, []int{cfg.VocabSize}); err != nil {
		return nil, err
	}
	switch {
	case !cfg.TieWordEmbeddings:
		if m.lmHead, err = l.matrix(h, []string{"lm_head.weight"}, []int{cfg.VocabSize}); err != nil {
			return nil, err
		}
	default:
		m.lmHead = m.embed
	}
	if m.norm, err = l.vector("model.norm.weight", h); err != nil {
		return nil, err
	}
	m.layers = make([]layer, cfg.NumHiddenLayers)
	for i := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ly := &m.layers[i]
		if ly.inNorm, err = l.vector(p+"input_layernorm.weight", h); err != nil {
			return nil, err
		}
		if ly.postNorm, err = l.vector(p+"post_attention_layernorm.weight", h); err != nil {
			return nil, err
		}
		a := p + "self_attn."
		if ly.qkv, err = l.matrix(h, []string{a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"}, []int{hq * hd, hkv * hd, hkv * hd}); err != nil {
			return nil, err
		}
		if cfg.QKVBias {
			if ly.qkv.Bias, err = l.bias([]string{a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"}, []int{hq * hd, hkv * hd, hkv * hd}); err != nil {
				return nil, err
			}
		}
		if cfg.QKNorm {
			if ly.qNorm, err = l.vector(a+"q_norm.weight", hd); err != nil {
				return nil, err
			}
			if ly.kNorm, err = l.vector(a+"k_norm.weight", hd); err != nil {
				return nil, err
			}
		}
		if ly.o, err = l.matrix(hq*hd, []string{a + "o_proj.weight"}, []int{h}); err != nil {
			return nil, err
		}
		f := p + "mlp."
		inter := cfg.IntermediateSize
		if ly.gateUp, err = l.matrix(h, []string{f + "gate_proj.weight", f + "up_proj.weight"}, []int{inter, inter}); err != nil {
			return nil, err
		}
		if ly.down, err = l.matrix(inter, []string{f + "down_proj.weight"}, []int{h}); err != nil {
			return nil, err
		}
	}
	m.setFuseRows()
	inv, attn, err := cfg.RopeFrequencies()
	if err != nil {
		return nil, err
	}
	// transformers keeps inv_freq as a floating buffer, which is cast with
	// the model to the checkpoint dtype: the reference logits depend on that
	// rounding (1e-3 relative error without it), so reproduce it.
	for i, f := range inv {
		switch cfg.Dtype() {
		case "bfloat16":
			inv[i] = weights.BF16ToF32(weights.F32ToBF16(f))
		case "float16":
			inv[i] = weights.F16ToF32(weights.F32ToF16(f))
		}
	}
	m.rope = &backend.RoPE{HeadDim: hd, InvFreq: inv, AttnFactor: attn}
	return m, nil
}

// bias uploads the concatenation of 1-D bias tensors as float32.
func (l *loader) bias(names []string, sizes []int) (backend.Tensor, error) {
	var all []float32
	for i, name := range names {
		v, err := l.view(name, sizes[i])
		if err != nil {
			return nil, err
		}
		f, err := weights.ToFloat32(v.DType, v.Bytes())
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		all = append(all, f...)
	}
	return l.upload(backend.F32, []int{len(all)}, f32Bytes(all))
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() backend.Backend { return m.b }

// Close frees the model's tensors on the backend.
func (m *Model) Close() {
	for _, t := range m.tensors {
		m.b.Free(t)
	}
	m.tensors = nil
}
