// Package tinymodel builds Tokamak's embedded default model: a small
// Llama-architecture checkpoint, written in the Hugging Face layout
// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json),
// so that `tokamak generate` and `tokamak serve` work on a fresh machine
// with nothing downloaded.
//
// It is not a trained network. Its weights are constructed: the embedding is
// one-hot over a byte-level vocabulary, the LM head holds the log
// probabilities of character bigrams counted from a short English text in
// this package, and the attention and MLP blocks have small seeded random
// weights whose contribution perturbs, but does not drown, the bigram
// logits. The output therefore looks like English letters and spaces; it
// exercises every path of the engine (tokenizer, chat template, paged
// attention, sampling, streaming) at a size that loads in milliseconds.
package tinymodel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/weights"
)

// Version names the generated files; bump it when the construction changes.
const Version = "tiny-bigram-v2"

// Shape of the model.
const (
	numBytes     = 256
	tokEndOfText = 256
	tokImStart   = 257
	tokImEnd     = 258
	vocabSize    = 264 // bytes + specials, padded to a multiple of 8
	hiddenSize   = 320
	numLayers    = 2
	numHeads     = 4
	numKVHeads   = 2
	headDim      = 80
	intermediate = 512
	maxContext   = 2048
	layerStd     = 0.02
	outStd       = 0.0004
)

const corpus = `Tokamak is an engine that serves language models. It reads a checkpoint,
loads the weights onto the device, and answers requests as they come. Each request
is a prompt; the engine turns the prompt into tokens, runs the model one step at a
time, and sends the new text back to the client while it is being written. Many
requests share the machine at once, so the engine keeps a cache of keys and values
for every sequence and packs the work of all of them into each step. When the cache
is full, the newest work waits and comes back later with the same answer. The model
on this page is small and knows only which letter tends to follow which, so its
words are not real words, but the path that carries them is the same path that
carries the words of a large model on a fast card. Try a real checkpoint next.
`

// Materialize writes the model into dir (default: the user cache folder)
// unless it is already there, and returns the folder.
func Materialize(dir string) (string, error) {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "tokamak", Version)
	}
	marker := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(marker); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tiny-*")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", fmt.Errorf("tiny model: %w", err)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), ".tiny-*"); err != nil {
			return "", fmt.Errorf("tiny model: %w", err)
		}
	}
	defer os.RemoveAll(tmp)
	if err := Write(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have won the race; use its copy.
		if _, statErr := os.Stat(marker); statErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("tiny model: %w", err)
	}
	return dir, nil
}

// Write writes the model's files into an existing folder.
func Write(dir string) error {
	files := map[string]any{
		"config.json":            config(),
		"generation_config.json": map[string]any{"eos_token_id": []int{tokImEnd, tokEndOfText}, "do_sample": true, "temperature": 0.8},
		"tokenizer.json":         tokenizerJSON(),
		"tokenizer_config.json":  tokenizerConfig(),
	}
	for name, v := range files {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("tiny model %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("tiny model: %w", err)
		}
	}
	if err := weights.WriteFile(filepath.Join(dir, "model.safetensors"), tensors(), map[string]string{"format": "pt", "tokamak": Version}); err != nil {
		return fmt.Errorf("tiny model: %w", err)
	}
	return nil
}

func config() map[string]any {
	return map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             hiddenSize,
		"intermediate_size":       intermediate,
		"num_hidden_layers":       numLayers,
		"num_attention_heads":     numHeads,
		"num_key_value_heads":     numKVHeads,
		"head_dim":                headDim,
		"vocab_size":              vocabSize,
		"max_position_embeddings": maxContext,
		"rms_norm_eps":            1e-5,
		"rope_theta":              10000.0,
		"tie_word_embeddings":     false,
		"hidden_act":              "silu",
		"bos_token_id":            nil,
		"eos_token_id":            tokImEnd,
		"dtype":                   "bfloat16",
	}
}

// bigramLogits returns log P(next | prev) over the vocabulary for every
// token, with add-one smoothing over printable bytes.
func bigramLogits() [][]float32 {
	counts := make([][]float64, vocabSize)
	for i := range counts {
		counts[i] = make([]float64, vocabSize)
		for b := 0; b < numBytes; b++ {
			if b >= 'a' && b <= 'z' || b == ' ' || b == ',' || b == '.' {
				counts[i][b] = 0.01
			}
		}
	}
	text := []byte(corpus)
	for i := 0; i+1 < len(text); i++ {
		a, b := text[i], text[i+1]
		if b == '\n' {
			b = ' '
		}
		if a == '\n' {
			a = ' '
		}
		counts[a][b]++
	}
	counts['.'][tokImEnd] += 2 // sentences sometimes end the answer
	for b := 'a'; b <= 'z'; b++ {
		counts[tokImStart][b] = 1
		counts[tokEndOfText][b] = 1
		counts[tokImEnd][b] = 1
		counts['\n'][b] = 1
	}
	out := make([][]float32, vocabSize)
	for i, row := range counts {
		var sum float64
		for _, c := range row {
			sum += c
		}
		out[i] = make([]float32, vocabSize)
		for j, c := range row {
			if c == 0 || sum == 0 {
				out[i][j] = -30
				continue
			}
			out[i][j] = float32(math.Log(c / sum))
		}
	}
	return out
}

func bf16(vals []float32) []byte {
	raw := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(raw[2*i:], weights.F32ToBF16(v))
	}
	return raw
}

func tensors() []weights.WriteTensor {
	rng := rand.New(rand.NewPCG(1, 2))
	normal := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	var ts []weights.WriteTensor
	add := func(name string, vals []float32, shape ...int) {
		ts = append(ts, weights.WriteTensor{Name: name, DType: backend.BF16, Shape: shape, Data: bf16(vals)})
	}
	// One-hot embeddings: after the final RMSNorm token t is sqrt(H)·e_t, so
	// lm_head column t scaled by 1/sqrt(H) yields the bigram row of t.
	embed := make([]float32, vocabSize*hiddenSize)
	for t := 0; t < vocabSize; t++ {
		embed[t*hiddenSize+t] = 1
	}
	add("model.embed_tokens.weight", embed, vocabSize, hiddenSize)
	head := make([]float32, vocabSize*hiddenSize)
	inv := float32(1 / math.Sqrt(hiddenSize))
	for prev, row := range bigramLogits() {
		for next, l := range row {
			head[next*hiddenSize+prev] = l * inv
		}
	}
	add("lm_head.weight", head, vocabSize, hiddenSize)
	add("model.norm.weight", ones(hiddenSize), hiddenSize)
	for l := 0; l < numLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", ones(hiddenSize), hiddenSize)
		add(p+"post_attention_layernorm.weight", ones(hiddenSize), hiddenSize)
		add(p+"self_attn.q_proj.weight", normal(numHeads*headDim*hiddenSize, layerStd), numHeads*headDim, hiddenSize)
		add(p+"self_attn.k_proj.weight", normal(numKVHeads*headDim*hiddenSize, layerStd), numKVHeads*headDim, hiddenSize)
		add(p+"self_attn.v_proj.weight", normal(numKVHeads*headDim*hiddenSize, layerStd), numKVHeads*headDim, hiddenSize)
		add(p+"self_attn.o_proj.weight", normal(hiddenSize*numHeads*headDim, outStd), hiddenSize, numHeads*headDim)
		add(p+"mlp.gate_proj.weight", normal(intermediate*hiddenSize, layerStd), intermediate, hiddenSize)
		add(p+"mlp.up_proj.weight", normal(intermediate*hiddenSize, layerStd), intermediate, hiddenSize)
		add(p+"mlp.down_proj.weight", normal(hiddenSize*intermediate, outStd), hiddenSize, intermediate)
	}
	return ts
}
