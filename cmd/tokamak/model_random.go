package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// modelCommand groups checkpoint utilities: `model random` writes a
// Hugging Face-layout checkpoint of a real model's shapes with random
// weights (for benchmarks that other engines can load too).
func modelCommand() *cli.Command {
	return &cli.Command{
		Name:  "model",
		Usage: "checkpoint utilities",
		Subcommands: []*cli.Command{{
			Name:  "random",
			Usage: "write a checkpoint of a known model's shapes with random weights",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Required: true, Usage: "preset (" + strings.Join(model.PresetNames(), ", ") + ") or a config.json path"},
				&cli.StringFlag{Name: "dtype", Value: "bf16", Usage: "bf16, f16 or f32"},
				&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
			},
			Action: func(c *cli.Context) error {
				cfg, err := randomConfig(c.String("config"))
				if err != nil {
					return err
				}
				var dt backend.DType
				switch strings.ToLower(c.String("dtype")) {
				case "bf16", "bfloat16":
					dt = backend.BF16
				case "f16", "fp16", "float16":
					dt = backend.F16
				case "f32", "fp32", "float32":
					dt = backend.F32
				default:
					return fmt.Errorf("model random: --dtype %q not supported (bf16, f16, f32)", c.String("dtype"))
				}
				start := time.Now()
				out := c.String("out")
				if err := model.WriteRandom(out, cfg, dt, c.Uint64("seed")); err != nil {
					return err
				}
				gb := float64(cfg.ParamCount()) * float64(dt.Bits()) / 8 / 1e9
				secs := time.Since(start).Seconds()
				fmt.Fprintf(c.App.Writer, "wrote %s: %s, %.2f GB in %.1f s (%.2f GB/s)\n", out, cfg.ModelType, gb, secs, gb/secs)
				return nil
			},
		}},
	}
}

// randomConfig resolves --config: a preset name, or a config.json path (or
// a folder holding one).
func randomConfig(arg string) (*model.Config, error) {
	if st, err := os.Stat(arg); err == nil {
		dir := arg
		if !st.IsDir() {
			dir = filepath.Dir(arg)
		}
		return model.LoadConfig(dir)
	}
	return model.Preset(arg)
}
