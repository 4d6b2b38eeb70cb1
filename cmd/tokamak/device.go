package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/cpu"
	"github.com/tokamak-ai/tokamak/cuda"
	"github.com/tokamak-ai/tokamak/engine/backend"
	"github.com/tokamak-ai/tokamak/internal/tinymodel"
)

var modelFlag = &cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "Hugging Face checkpoint folder (default: the embedded tiny model)"}

var deviceFlag = &cli.StringFlag{Name: "device", Value: "auto", Usage: "cpu, cuda or auto (cuda when available, else cpu)"}

// resolveModel returns the model folder to load: --model, or the embedded
// default model materialised in the user's cache.
func resolveModel(c *cli.Context) (string, error) {
	if dir := c.String("model"); dir != "" {
		return dir, nil
	}
	dir, err := tinymodel.Materialize("")
	if err != nil {
		return "", fmt.Errorf("embedded model: %w", err)
	}
	slog.Info("no --model given: using the embedded tiny model (a character-bigram model in Llama form, for trying Tokamak out)", "dir", dir)
	return dir, nil
}

var gpuMemFlag = &cli.Float64Flag{Name: "gpu-memory-utilization", Value: 0.9, Usage: "fraction of GPU memory Tokamak may hold (weights, activations, KV cache)"}

// openBackend returns the backend named by --device.
func openBackend(c *cli.Context) (backend.Backend, error) {
	openCUDA := func() (backend.Backend, error) {
		return cuda.New(cuda.Options{GPUMemoryUtilization: c.Float64("gpu-memory-utilization"), ProfileOps: c.Bool("profile-ops")})
	}
	switch device := c.String("device"); strings.ToLower(device) {
	case "cpu":
		return cpu.New(), nil
	case "cuda", "gpu":
		return openCUDA()
	case "", "auto":
		b, err := openCUDA()
		if err == nil {
			return b, nil
		}
		slog.Info("falling back to the CPU backend", "reason", err)
		return cpu.New(), nil
	default:
		return nil, fmt.Errorf("unknown --device %q (cpu, cuda, auto)", device)
	}
}
