package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// WriteRandom writes a checkpoint of cfg's shapes with random weights into
// dir, in the Hugging Face layout (config.json, safetensors shards of at
// most 4 GiB with their index), so that benchmarks run on real shapes and
// other engines can load the same files. Weights are uniform in ±std·√3
// (std 0.02, norms 1), generated while writing, so a multi-GB checkpoint
// never sits in memory. dt is BF16, F16 or F32.
func WriteRandom(dir string, cfg *Config, dt backend.DType, seed uint64) error {
	if dt != backend.BF16 && dt != backend.F16 && dt != backend.F32 {
		return fmt.Errorf("random checkpoint: dtype %s not supported (bf16, f16, f32)", dt)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	var ts []weights.WriteTensor
	n := 0
	add := func(name string, std float64, shape ...int) {
		n++
		ts = append(ts, weights.WriteTensor{Name: name, DType: dt, Shape: shape, Fill: randomFill(dt, seed+uint64(n)*0x9e3779b97f4a7c15, std)})
	}
	h, i, v, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize, cfg.HeadDim
	hq, hkv := cfg.NumAttentionHeads, cfg.NumKeyValueHeads
	add("model.embed_tokens.weight", 0.02, v, h)
	if !cfg.TieWordEmbeddings {
		add("lm_head.weight", 0.02, v, h)
	}
	add("model.norm.weight", -1, h)
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", -1, h)
		add(p+"post_attention_layernorm.weight", -1, h)
		add(p+"self_attn.q_proj.weight", 0.02, hq*hd, h)
		add(p+"self_attn.k_proj.weight", 0.02, hkv*hd, h)
		add(p+"self_attn.v_proj.weight", 0.02, hkv*hd, h)
		if cfg.QKVBias {
			add(p+"self_attn.q_proj.bias", 0.02, hq*hd)
			add(p+"self_attn.k_proj.bias", 0.02, hkv*hd)
			add(p+"self_attn.v_proj.bias", 0.02, hkv*hd)
		}
		if cfg.QKNorm {
			add(p+"self_attn.q_norm.weight", -1, hd)
			add(p+"self_attn.k_norm.weight", -1, hd)
		}
		add(p+"self_attn.o_proj.weight", 0.02, h, hq*hd)
		add(p+"mlp.gate_proj.weight", 0.02, i, h)
		add(p+"mlp.up_proj.weight", 0.02, i, h)
		add(p+"mlp.down_proj.weight", 0.02, h, i)
	}
	if _, err := weights.WriteSharded(dir, ts, map[string]string{"format": "pt"}, 4<<30); err != nil {
		return fmt.Errorf("random checkpoint: %w", err)
	}
	return writeConfig(dir, cfg, dt)
}

// writeConfig writes cfg as config.json in the classic (rope_theta +
// rope_scaling) form that every engine reads.
func writeConfig(dir string, cfg *Config, dt backend.DType) error {
	names := map[backend.DType]string{backend.BF16: "bfloat16", backend.F16: "float16", backend.F32: "float32"}
	out := map[string]any{
		"architectures":           cfg.Architectures,
		"model_type":              cfg.ModelType,
		"hidden_size":             cfg.HiddenSize,
		"intermediate_size":       cfg.IntermediateSize,
		"num_hidden_layers":       cfg.NumHiddenLayers,
		"num_attention_heads":     cfg.NumAttentionHeads,
		"num_key_value_heads":     cfg.NumKeyValueHeads,
		"head_dim":                cfg.HeadDim,
		"vocab_size":              cfg.VocabSize,
		"max_position_embeddings": cfg.MaxPositionEmbeddings,
		"rms_norm_eps":            cfg.RMSNormEps,
		"rope_theta":              cfg.RopeTheta,
		"tie_word_embeddings":     cfg.TieWordEmbeddings,
		"hidden_act":              "silu",
		"torch_dtype":             names[dt],
		"bos_token_id":            cfg.BOSTokenID,
		"eos_token_id":            cfg.EOSTokenID,
	}
	if cfg.RopeScaling != nil && (cfg.RopeScaling.Type != "" && cfg.RopeScaling.Type != "default" || cfg.RopeScaling.LegacyType != "") {
		out["rope_scaling"] = cfg.RopeScaling
	}
	if cfg.ModelType == "qwen2" || cfg.ModelType == "qwen3" {
		out["attention_bias"] = cfg.QKVBias
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("random checkpoint config: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
}

// randomFill returns a Fill function producing uniform values of standard
// deviation std (std < 0: all ones) from a splitmix64 stream keyed by the
// byte offset, so chunks can be produced in any order.
func randomFill(dt backend.DType, seed uint64, std float64) func([]byte, int64) error {
	size := dt.Bits() / 8
	amp := float32(std * math.Sqrt(3))
	return func(dst []byte, off int64) error {
		state := seed ^ uint64(off)*0xbf58476d1ce4e5b9
		for j := 0; j+size <= len(dst); j += size {
			v := float32(1)
			if std >= 0 {
				state += 0x9e3779b97f4a7c15
				z := state
				z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
				z = (z ^ z>>27) * 0x94d049bb133111eb
				z ^= z >> 31
				v = (float32(z>>40)/float32(1<<24)*2 - 1) * amp
			}
			switch dt {
			case backend.BF16:
				binary.LittleEndian.PutUint16(dst[j:], weights.F32ToBF16(v))
			case backend.F16:
				binary.LittleEndian.PutUint16(dst[j:], weights.F32ToF16(v))
			default:
				binary.LittleEndian.PutUint32(dst[j:], math.Float32bits(v))
			}
		}
		return nil
	}
}
