//go:build !cuda

package gpumon

import (
	"errors"

	"github.com/tokamak-ai/tokamak/server"
)

// ErrNoGPUSupport is returned by New in binaries built without -tags cuda.
var ErrNoGPUSupport = errors.New("gpumon: built without CUDA (-tags cuda) support")

// Monitor is the NVML monitor; in this build it cannot be made.
type Monitor struct{}

// New reports that this binary has no GPU support.
func New() (*Monitor, error) { return nil, ErrNoGPUSupport }

// Sample returns nothing.
func (m *Monitor) Sample() ([]server.DeviceSample, error) { return nil, ErrNoGPUSupport }

// Close does nothing.
func (m *Monitor) Close() error { return nil }
