package model

import (
	"fmt"
	"sort"
	"strings"
)

// presets are the config.json documents of well-known models, for making
// random checkpoints of real shapes (tokamak model random).
var presets = map[string]string{
	"llama-3.1-8b": `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,"intermediate_size":14336,
		"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,"vocab_size":128256,
		"max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000,
		"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
		"tie_word_embeddings":false,"hidden_act":"silu","bos_token_id":128000,"eos_token_id":[128001,128008,128009]}`,
	"llama-3.2-1b": `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":2048,"intermediate_size":8192,
		"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,"vocab_size":128256,
		"max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000,
		"rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
		"tie_word_embeddings":true,"hidden_act":"silu","bos_token_id":128000,"eos_token_id":[128001,128008,128009]}`,
	"llama-3.1-70b": `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8192,"intermediate_size":28672,
		"num_hidden_layers":80,"num_attention_heads":64,"num_key_value_heads":8,"head_dim":128,"vocab_size":128256,
		"max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000,
		"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
		"tie_word_embeddings":false,"hidden_act":"silu","bos_token_id":128000,"eos_token_id":[128001,128008,128009]}`,
	"qwen2.5-7b": `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":3584,"intermediate_size":18944,
		"num_hidden_layers":28,"num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,
		"max_position_embeddings":32768,"rms_norm_eps":1e-6,"rope_theta":1000000,
		"tie_word_embeddings":false,"hidden_act":"silu","bos_token_id":151643,"eos_token_id":151645}`,
	"qwen2.5-0.5b": `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,
		"num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,
		"max_position_embeddings":32768,"rms_norm_eps":1e-6,"rope_theta":1000000,
		"tie_word_embeddings":true,"hidden_act":"silu","bos_token_id":151643,"eos_token_id":151645}`,
	"qwen3-8b": `{"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","hidden_size":4096,"intermediate_size":12288,
		"num_hidden_layers":36,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936,
		"max_position_embeddings":40960,"rms_norm_eps":1e-6,"rope_theta":1000000,
		"tie_word_embeddings":false,"hidden_act":"silu","bos_token_id":151643,"eos_token_id":151645}`,
	"mistral-7b": `{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":4096,"intermediate_size":14336,
		"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,"vocab_size":32768,
		"max_position_embeddings":32768,"rms_norm_eps":1e-5,"rope_theta":1000000,
		"tie_word_embeddings":false,"hidden_act":"silu","bos_token_id":1,"eos_token_id":2}`,
}

// PresetNames lists the named model shapes Preset knows, sorted.
func PresetNames() []string {
	out := make([]string, 0, len(presets))
	for k := range presets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Preset returns the parsed config of a well-known model shape
// ("llama-3.1-8b"), as its Hugging Face config.json states it.
func Preset(name string) (*Config, error) {
	doc, ok := presets[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown model preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	c, err := ParseConfig([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	return c, nil
}
