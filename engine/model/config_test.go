package model

import (
	"errors"
	"strings"
	"testing"
)

const baseConfig = `{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"rms_norm_eps":1e-5,"rope_theta":10000%s}`

func cfgWith(extra string) string { return strings.Replace(baseConfig, "%s", extra, 1) }

func TestParseConfigRejectsMalformed(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"not json", `{"model_type":`, "parse config.json"},
		{"unknown architecture", `{"model_type":"gpt2","hidden_size":64}`, "Tokamak runs model_type llama, mistral, qwen2, qwen3"},
		{"zero heads", cfgWith(`,"num_attention_heads":0`), "num_attention_heads must be positive"},
		{"kv heads do not divide", cfgWith(`,"num_key_value_heads":3`), "must be positive and divide"},
		{"zero layers", cfgWith(`,"num_hidden_layers":0`), "num_hidden_layers must be positive"},
		{"negative vocab", cfgWith(`,"vocab_size":-1`), "vocab_size must be positive"},
		{"odd head dim", cfgWith(`,"head_dim":15`), "head_dim must be positive and even"},
		{"absurd hidden size", cfgWith(`,"hidden_size":4000000000`), "absurdly large"},
		{"wrong type", cfgWith(`,"hidden_size":"big"`), "parse config.json"},
		{"gelu", cfgWith(`,"hidden_act":"gelu"`), "hidden_act"},
		{"bad rope scaling", cfgWith(`,"rope_scaling":{"rope_type":"longrope","factor":2}`), "rope scaling \"longrope\" not supported"},
		{"partial rotary in rope_parameters", cfgWith(`,"rope_parameters":{"rope_type":"default","rope_theta":10000,"partial_rotary_factor":0.5}`), "partial_rotary_factor"},
		{"partial rotary at top level", cfgWith(`,"partial_rotary_factor":0.25`), "partial_rotary_factor"},
		{"yarn mscale", cfgWith(`,"rope_scaling":{"rope_type":"yarn","factor":4,"mscale":0.707,"mscale_all_dim":0.707}`), "mscale"},
		{"yarn without truncation", cfgWith(`,"rope_scaling":{"rope_type":"yarn","factor":4,"truncate":false}`), "truncate"},
		{"yarn with rope_theta 1", strings.Replace(cfgWith(`,"rope_scaling":{"rope_type":"yarn","factor":4}`), `"rope_theta":10000`, `"rope_theta":1`, 1), "not finite"},
		{"linear factor underflow", cfgWith(`,"rope_scaling":{"rope_type":"linear","factor":1e-320}`), "not finite"},
		{"llama3 scaling incomplete", cfgWith(`,"rope_scaling":{"rope_type":"llama3","factor":8}`), "llama3 rope scaling needs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := ParseConfig([]byte(`{"model_type":"phi3","hidden_size":1}`)); !errors.Is(err, ErrUnsupportedArch) {
		t.Errorf("unknown model_type: %v is not ErrUnsupportedArch", err)
	}
}

func TestParseConfigForms(t *testing.T) {
	cases := []struct {
		name     string
		json     string
		theta    float64
		headDim  int
		qkvBias  bool
		qkNorm   bool
		kvHeads  int
		scaleTyp string
	}{
		{"classic", cfgWith(``), 10000, 16, false, false, 2, ""},
		{"rope_parameters", strings.Replace(cfgWith(`,"rope_parameters":{"rope_theta":1e6,"rope_type":"default"}`), `"rope_theta":10000`, `"x":0`, 1), 1e6, 16, false, false, 2, "default"},
		{"qwen2 bias", strings.Replace(cfgWith(``), "llama", "qwen2", 1), 10000, 16, true, false, 2, ""},
		{"qwen3 qk norm and head_dim", strings.Replace(cfgWith(`,"head_dim":32`), "llama", "qwen3", 1), 10000, 32, false, true, 2, ""},
		{"mha default kv heads", strings.Replace(cfgWith(``), `"num_key_value_heads":2,`, "", 1), 10000, 16, false, false, 4, ""},
		{"attention_bias flag", cfgWith(`,"attention_bias":true`), 10000, 16, true, false, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if c.RopeTheta != tc.theta || c.HeadDim != tc.headDim || c.QKVBias != tc.qkvBias || c.QKNorm != tc.qkNorm || c.NumKeyValueHeads != tc.kvHeads {
				t.Fatalf("got theta %g head_dim %d bias %v qknorm %v kv %d", c.RopeTheta, c.HeadDim, c.QKVBias, c.QKNorm, c.NumKeyValueHeads)
			}
		})
	}
}

func TestRopeFrequencies(t *testing.T) {
	// llama3 scaling leaves high frequencies alone and divides low ones by factor.
	c, err := ParseConfig([]byte(cfgWith(`,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}`)))
	if err != nil {
		t.Fatal(err)
	}
	inv, attn, err := c.RopeFrequencies()
	if err != nil {
		t.Fatal(err)
	}
	if attn != 1 || inv[0] != 1 {
		t.Fatalf("inv[0]=%g attn=%g, want 1 and 1", inv[0], attn)
	}
	last := inv[len(inv)-1]
	want := float32(1.0 / 8 * 0.000316227766)
	if d := last/want - 1; d > 1e-5 || d < -1e-5 {
		t.Fatalf("lowest frequency %g, want %g (divided by the factor)", last, want)
	}
	// linear scaling divides all frequencies.
	c2, _ := ParseConfig([]byte(cfgWith(`,"rope_scaling":{"type":"linear","factor":2}`)))
	inv2, _, _ := c2.RopeFrequencies()
	if inv2[0] != 0.5 {
		t.Fatalf("linear: inv[0]=%g, want 0.5", inv2[0])
	}
	// yarn sets an attention factor above 1.
	c3, _ := ParseConfig([]byte(cfgWith(`,"rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":2048}`)))
	if _, a, _ := c3.RopeFrequencies(); a <= 1 {
		t.Fatalf("yarn attention factor %g, want > 1", a)
	}
}

// TestSlidingWindowCapsContext: attention here always sees the whole
// context, which agrees with transformers' sliding-window attention only up
// to the window; the usable context must stop there.
func TestSlidingWindowCapsContext(t *testing.T) {
	cases := []struct {
		name string
		json string
		want int
	}{
		{"mistral window", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096`), "llama", "mistral", 1), 4096},
		{"mistral null window", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":null`), "llama", "mistral", 1), 32768},
		{"qwen2 window off", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096,"use_sliding_window":false`), "llama", "qwen2", 1), 32768},
		{"qwen2 window on", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096,"use_sliding_window":true,"max_window_layers":1`), "llama", "qwen2", 1), 4096},
		{"qwen2 window on for no layer", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096,"use_sliding_window":true,"max_window_layers":2`), "llama", "qwen2", 1), 32768},
		{"qwen3 layer_types sliding", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096,"use_sliding_window":true,"layer_types":["full_attention","sliding_attention"]`), "llama", "qwen3", 1), 4096},
		{"qwen3 layer_types full", strings.Replace(cfgWith(`,"max_position_embeddings":32768,"sliding_window":4096,"use_sliding_window":true,"layer_types":["full_attention","full_attention"]`), "llama", "qwen3", 1), 32768},
		{"window beyond context", strings.Replace(cfgWith(`,"max_position_embeddings":2048,"sliding_window":4096`), "llama", "mistral", 1), 2048},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxPositionEmbeddings != tc.want {
				t.Fatalf("context %d, want %d", c.MaxPositionEmbeddings, tc.want)
			}
		})
	}
}
