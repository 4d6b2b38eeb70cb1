package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "describe a checkpoint (architecture, parameters, memory) and the GPU, if any",
		Flags: []cli.Flag{modelFlag},
		Action: func(c *cli.Context) error {
			dir, err := resolveModel(c)
			if err != nil {
				return err
			}
			cfg, err := model.LoadConfig(dir)
			if err != nil {
				return err
			}
			fmt.Print(describeModel(dir, cfg))
			if g, err := gpuInfo(); err != nil {
				fmt.Printf("gpu:            none (%v)\n", err)
			} else {
				fmt.Print(g)
			}
			return nil
		},
	}
}

// describeModel renders the facts of a checkpoint that decide how it runs.
func describeModel(dir string, cfg *model.Config) string {
	var b strings.Builder
	arch := cfg.ModelType
	if len(cfg.Architectures) > 0 {
		arch = cfg.Architectures[0] + " (" + cfg.ModelType + ")"
	}
	params := cfg.ParamCount()
	dt := cfg.Dtype()
	bytesPer := 2
	if dt == "float32" {
		bytesPer = 4
	}
	fmt.Fprintf(&b, "model:          %s\n", dir)
	fmt.Fprintf(&b, "architecture:   %s\n", arch)
	fmt.Fprintf(&b, "parameters:     %s\n", humanCount(params))
	fmt.Fprintf(&b, "dtype:          %s\n", dt)
	fmt.Fprintf(&b, "layers:         %d, hidden %d, intermediate %d\n", cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize)
	fmt.Fprintf(&b, "attention:      %d query heads, %d kv heads, head_dim %d", cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim)
	if cfg.QKVBias {
		b.WriteString(", qkv bias")
	}
	if cfg.QKNorm {
		b.WriteString(", q/k norm")
	}
	b.WriteString("\n")
	rope := "default"
	if cfg.RopeScaling != nil {
		rope = cfg.RopeScaling.Type + cfg.RopeScaling.LegacyType
	}
	fmt.Fprintf(&b, "rope:           theta %g, scaling %s\n", cfg.RopeTheta, rope)
	fmt.Fprintf(&b, "vocabulary:     %d (tied embeddings: %v)\n", cfg.VocabSize, cfg.TieWordEmbeddings)
	fmt.Fprintf(&b, "context:        %d tokens\n", cfg.MaxPositionEmbeddings)
	kvPerToken := backend.KVCacheSpec{Layers: cfg.NumHiddenLayers, NumBlocks: 1, BlockSize: 1, KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim, DType: backend.BF16}.Bytes()
	fmt.Fprintf(&b, "weights:        %s (%s on disk)\n", humanBytes(params*int64(bytesPer)), humanBytes(dirSize(dir, ".safetensors")))
	fmt.Fprintf(&b, "kv cache:       %s per token in bf16, %s for one full context\n", humanBytes(kvPerToken), humanBytes(kvPerToken*int64(cfg.MaxPositionEmbeddings)))
	return b.String()
}

func dirSize(dir, suffix string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
