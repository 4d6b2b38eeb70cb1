package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// engineFlags are the engine-sizing flags shared by serve and bench
// throughput; maxBatchTokens is the command's default step budget.
func engineFlags(maxBatchTokens int) []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "kv-cache-gib", Value: 1, Usage: "KV cache size in GiB"},
		&cli.IntFlag{Name: "max-num-seqs", Value: 256, Usage: "most sequences running at once"},
		&cli.IntFlag{Name: "max-num-batched-tokens", Value: maxBatchTokens, Usage: "most tokens in one forward step"},
		&cli.BoolFlag{Name: "enforce-eager", Aliases: []string{"no-cuda-graphs"}, Usage: "run decode steps op by op instead of replaying CUDA graphs captured at start"},
	}
}

// engineConfig is the engine configuration for model m (loaded from dir)
// sized by engineFlags; callers add what is particular to them.
func engineConfig(c *cli.Context, m *model.Model, dir string) engine.Config {
	return engine.Config{
		KVMemoryBytes:    int64(c.Float64("kv-cache-gib") * (1 << 30)),
		MaxBatchTokens:   c.Int("max-num-batched-tokens"),
		MaxSeqs:          c.Int("max-num-seqs"),
		MaxContextTokens: m.Config.MaxPositionEmbeddings,
		VocabSize:        m.Config.VocabSize,
		EOSTokenIDs:      m.Config.EOSIDs(),
		ModelIdentity:    dir,
		EnforceEager:     c.Bool("enforce-eager"),
		OnWarmup: func(graphs int, took time.Duration) {
			fmt.Fprintf(c.App.Writer, "warm-up: captured %d graphs in %d ms\n", graphs, took.Milliseconds())
		},
	}
}
