//go:build !cuda

package main

import "github.com/tokamak-ai/tokamak/cuda"

// gpuInfo reports that this binary has no GPU support.
func gpuInfo() (string, error) { return "", cuda.ErrNotBuilt }
