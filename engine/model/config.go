// Package model is the Llama-family forward pass (Llama 2/3.x, Mistral,
// Qwen2/2.5, Qwen3), written once against backend.Backend, and the parsing
// of Hugging Face config.json files.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrUnsupportedArch is returned for a config whose architecture Tokamak
// does not implement.
var ErrUnsupportedArch = errors.New("unsupported architecture")

// supported maps model_type to the architecture features it implies.
var supported = map[string]struct {
	qkvBias bool
	qkNorm  bool
}{
	"llama":   {},
	"mistral": {},
	"qwen2":   {qkvBias: true},
	"qwen3":   {qkNorm: true},
}

// SupportedTypes lists the model_type values Tokamak runs.
func SupportedTypes() []string {
	out := make([]string, 0, len(supported))
	for k := range supported {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RopeScaling is the rope_scaling (or rope_parameters) block of a config.
type RopeScaling struct {
	Type                          string  `json:"rope_type,omitempty"`
	LegacyType                    string  `json:"type,omitempty"`
	Theta                         float64 `json:"rope_theta,omitempty"`
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
	BetaFast                      float64 `json:"beta_fast,omitempty"`
	BetaSlow                      float64 `json:"beta_slow,omitempty"`
	AttentionFactor               float64 `json:"attention_factor,omitempty"`
	PartialRotaryFactor           float64 `json:"partial_rotary_factor,omitempty"`
	Mscale                        float64 `json:"mscale,omitempty"`
	MscaleAllDim                  float64 `json:"mscale_all_dim,omitempty"`
	Truncate                      *bool   `json:"truncate,omitempty"`
}

// Config is the subset of a Hugging Face config.json that the forward pass
// needs, normalised across the classic and the newer (rope_parameters)
// forms.
type Config struct {
	Architectures         []string     `json:"architectures"`
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"`
	VocabSize             int          `json:"vocab_size"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	RopeParameters        *RopeScaling `json:"rope_parameters"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         *bool        `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	HiddenAct             string       `json:"hidden_act"`
	TorchDType            string       `json:"torch_dtype"`
	DType                 string       `json:"dtype"`
	BOSTokenID            any          `json:"bos_token_id"`
	EOSTokenID            any          `json:"eos_token_id"`
	SlidingWindow         *int         `json:"sliding_window"`
	UseSlidingWindow      bool         `json:"use_sliding_window"`
	MaxWindowLayers       int          `json:"max_window_layers"`
	LayerTypes            []string     `json:"layer_types"`
	PartialRotaryFactor   float64      `json:"partial_rotary_factor"`

	// QKVBias and QKNorm are derived from the model type and flags.
	QKVBias bool `json:"-"`
	QKNorm  bool `json:"-"`
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates a config.json document.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse config.json: %w", err)
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) normalize() error {
	arch, ok := supported[c.ModelType]
	if !ok {
		name := c.ModelType
		if name == "" && len(c.Architectures) > 0 {
			name = c.Architectures[0]
		}
		return fmt.Errorf("%w %q: Tokamak runs model_type %s", ErrUnsupportedArch, name, strings.Join(SupportedTypes(), ", "))
	}
	c.QKNorm = arch.qkNorm
	c.QKVBias = arch.qkvBias
	if c.AttentionBias != nil {
		c.QKVBias = c.QKVBias || *c.AttentionBias
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	switch {
	case c.HiddenSize <= 0:
		return fmt.Errorf("config: hidden_size must be positive, got %d", c.HiddenSize)
	case c.NumAttentionHeads <= 0:
		return fmt.Errorf("config: num_attention_heads must be positive, got %d", c.NumAttentionHeads)
	case c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("config: num_key_value_heads %d must be positive and divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	case c.NumHiddenLayers <= 0:
		return fmt.Errorf("config: num_hidden_layers must be positive, got %d", c.NumHiddenLayers)
	case c.IntermediateSize <= 0:
		return fmt.Errorf("config: intermediate_size must be positive, got %d", c.IntermediateSize)
	case c.VocabSize <= 0:
		return fmt.Errorf("config: vocab_size must be positive, got %d", c.VocabSize)
	}
	if c.HeadDim == 0 {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return fmt.Errorf("config: hidden_size %d not divisible by num_attention_heads %d and no head_dim", c.HiddenSize, c.NumAttentionHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return fmt.Errorf("config: head_dim must be positive and even, got %d", c.HeadDim)
	}
	const maxDim = 1 << 20
	for name, v := range map[string]int{"hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize, "head_dim": c.HeadDim, "num_hidden_layers": c.NumHiddenLayers, "num_attention_heads": c.NumAttentionHeads} {
		if v > maxDim {
			return fmt.Errorf("config: %s %d is absurdly large", name, v)
		}
	}
	if c.VocabSize > 1<<24 {
		return fmt.Errorf("config: vocab_size %d is absurdly large", c.VocabSize)
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return fmt.Errorf("config: hidden_act %q not supported (silu only)", c.HiddenAct)
	}
	if c.MLPBias {
		return errors.New("config: mlp_bias is not supported")
	}
	if c.RMSNormEps <= 0 {
		c.RMSNormEps = 1e-6
	}
	if c.MaxPositionEmbeddings <= 0 {
		c.MaxPositionEmbeddings = 4096
	}
	// The newer form folds rope_theta into rope_parameters.
	if c.RopeParameters != nil {
		if c.RopeParameters.Theta > 0 {
			c.RopeTheta = c.RopeParameters.Theta
		}
		if c.RopeScaling == nil {
			c.RopeScaling = c.RopeParameters
		}
	}
	if c.RopeTheta <= 0 {
		c.RopeTheta = 10000
	}
	if _, _, err := c.RopeFrequencies(); err != nil {
		return err
	}
	// Sliding-window attention (Mistral with sliding_window; Qwen2/3 with
	// use_sliding_window, on the layers layer_types or max_window_layers
	// name) is not implemented: attention sees the whole context, which
	// agrees with transformers only up to the window. So the usable context
	// stops there (yarn keeps the uncapped length as its original context, as
	// transformers does when original_max_position_embeddings is absent).
	sliding := c.ModelType == "mistral"
	if c.UseSlidingWindow {
		sliding = c.MaxWindowLayers < c.NumHiddenLayers
		if len(c.LayerTypes) > 0 {
			sliding = false
			for _, lt := range c.LayerTypes {
				sliding = sliding || lt == "sliding_attention"
			}
		}
	}
	if w := c.SlidingWindow; sliding && w != nil && *w > 0 && *w < c.MaxPositionEmbeddings {
		if s := c.RopeScaling; s != nil && s.OriginalMaxPositionEmbeddings <= 0 {
			s.OriginalMaxPositionEmbeddings = c.MaxPositionEmbeddings
		}
		c.MaxPositionEmbeddings = *w
	}
	return nil
}

// Dtype returns the checkpoint's declared dtype name ("bfloat16").
func (c *Config) Dtype() string {
	if c.DType != "" {
		return c.DType
	}
	return c.TorchDType
}

// EOSIDs returns the eos_token_id entry as a list (it may be a number or a
// list in config.json).
func (c *Config) EOSIDs() []int32 { return idList(c.EOSTokenID) }

// BOSID returns bos_token_id and whether it is set.
func (c *Config) BOSID() (int32, bool) {
	l := idList(c.BOSTokenID)
	if len(l) == 0 {
		return 0, false
	}
	return l[0], true
}

func idList(v any) []int32 {
	switch x := v.(type) {
	case float64:
		return []int32{int32(x)}
	case []any:
		var out []int32
		for _, e := range x {
			if f, ok := e.(float64); ok {
				out = append(out, int32(f))
			}
		}
		return out
	}
	return nil
}

// QKVRows returns the output rows of the fused q/k/v projection.
func (c *Config) QKVRows() int {
	return (c.NumAttentionHeads + 2*c.NumKeyValueHeads) * c.HeadDim
}

// ParamCount returns the number of parameters the checkpoint holds.
func (c *Config) ParamCount() int64 {
	h, i, v := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	qkv := h * int64(c.QKVRows())
	o := int64(c.NumAttentionHeads*c.HeadDim) * h
	layer := qkv + o + 3*h*i + 2*h
	if c.QKVBias {
		layer += int64(c.QKVRows())
	}
	if c.QKNorm {
		layer += 2 * int64(c.HeadDim)
	}
	n := int64(c.NumHiddenLayers)*layer + v*h + h
	if !c.TieWordEmbeddings {
		n += v * h
	}
	return n
}

// RopeFrequencies returns the per-pair inverse frequencies (HeadDim/2 of
// them) with the configured scaling applied, and the attention factor that
// multiplies cos and sin.
func (c *Config) RopeFrequencies() ([]float32, float32, error) {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	attn := 1.0
	s := c.RopeScaling
	// transformers rotates only the first head_dim*partial_rotary_factor
	// dimensions; the backends rotate all of them, so anything else would be
	// silently wrong.
	for _, p := range []*RopeScaling{s, c.RopeParameters, {PartialRotaryFactor: c.PartialRotaryFactor}} {
		if p != nil && p.PartialRotaryFactor != 0 && p.PartialRotaryFactor != 1 {
			return nil, 0, fmt.Errorf("config: partial_rotary_factor %g not supported (the whole head is rotated)", p.PartialRotaryFactor)
		}
	}
	kind := ""
	if s != nil {
		kind = s.Type
		if kind == "" {
			kind = s.LegacyType
		}
	}
	switch kind {
	case "", "default":
	case "linear":
		if s.Factor <= 0 {
			return nil, 0, fmt.Errorf("config: linear rope scaling needs factor > 0")
		}
		for i := range inv {
			inv[i] /= s.Factor
		}
	case "llama3":
		if s.Factor <= 0 || s.LowFreqFactor <= 0 || s.HighFreqFactor <= s.LowFreqFactor || s.OriginalMaxPositionEmbeddings <= 0 {
			return nil, 0, fmt.Errorf("config: llama3 rope scaling needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
		}
		old := float64(s.OriginalMaxPositionEmbeddings)
		lowWavelen := old / s.LowFreqFactor
		highWavelen := old / s.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				inv[i] = f / s.Factor
			default:
				smooth := (old/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = (1-smooth)*f/s.Factor + smooth*f
			}
		}
	case "yarn":
		if s.Factor <= 0 {
			return nil, 0, fmt.Errorf("config: yarn rope scaling needs factor > 0")
		}
		if s.Mscale != 0 || s.MscaleAllDim != 0 {
			return nil, 0, fmt.Errorf("config: yarn rope scaling with mscale/mscale_all_dim not supported")
		}
		if s.Truncate != nil && !*s.Truncate {
			return nil, 0, fmt.Errorf("config: yarn rope scaling with truncate false not supported")
		}
		orig := float64(s.OriginalMaxPositionEmbeddings)
		if orig <= 0 {
			orig = float64(c.MaxPositionEmbeddings)
		}
		betaFast, betaSlow := s.BetaFast, s.BetaSlow
		if betaFast == 0 {
			betaFast = 32
		}
		if betaSlow == 0 {
			betaSlow = 1
		}
		dim := float64(c.HeadDim)
		corr := func(rot float64) float64 {
			return dim * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(c.RopeTheta))
		}
		low := math.Max(math.Floor(corr(betaFast)), 0)
		high := math.Min(math.Ceil(corr(betaSlow)), dim-1)
		if low == high {
			high += 0.001
		}
		for i, f := range inv {
			ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
			extrap := 1 - ramp
			inv[i] = f/s.Factor*(1-extrap) + f*extrap
		}
		attn = s.AttentionFactor
		if attn == 0 {
			attn = 1
			if s.Factor > 1 {
				attn = 0.1*math.Log(s.Factor) + 1
			}
		}
	default:
		return nil, 0, fmt.Errorf("config: rope scaling %q not supported (default, linear, llama3, yarn)", kind)
	}
	out := make([]float32, half)
	for i, f := range inv {
		out[i] = float32(f)
		if v := float64(out[i]); math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, fmt.Errorf("config: rope frequency %d is not finite (%g) with rope_theta %g and rope scaling %q", i, v, c.RopeTheta, kind)
		}
	}
	if a := float32(attn); math.IsNaN(float64(a)) || math.IsInf(float64(a), 0) {
		return nil, 0, fmt.Errorf("config: rope attention factor is not finite (%g)", attn)
	}
	return out, float32(attn), nil
}
