//go:build cuda

package gpumon

import (
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tokamak-ai/tokamak/server"
)

// Monitor samples every NVIDIA GPU through NVML; it implements
// server.DeviceMonitor and is safe for concurrent use.
type Monitor struct {
	mu      sync.Mutex
	devices []nvml.Device
}

// New initialises NVML. Close releases it.
func New() (*Monitor, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml init: %s", nvml.ErrorString(ret))
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		nvml.Shutdown()
		return nil, fmt.Errorf("nvml device count: %s", nvml.ErrorString(ret))
	}
	m := &Monitor{}
	for i := range n {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			nvml.Shutdown()
			return nil, fmt.Errorf("nvml device %d: %s", i, nvml.ErrorString(ret))
		}
		m.devices = append(m.devices, d)
	}
	return m, nil
}

// Sample reads memory and utilization of each GPU.
func (m *Monitor) Sample() ([]server.DeviceSample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]server.DeviceSample, 0, len(m.devices))
	for i, d := range m.devices {
		mem, ret := d.GetMemoryInfo()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml memory of gpu %d: %s", i, nvml.ErrorString(ret))
		}
		u, ret := d.GetUtilizationRates()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml utilization of gpu %d: %s", i, nvml.ErrorString(ret))
		}
		out = append(out, server.DeviceSample{Index: i, MemoryUsedBytes: mem.Used, MemoryTotalBytes: mem.Total,
			Utilization: float64(u.Gpu) / 100})
	}
	return out, nil
}

// Close shuts NVML down.
func (m *Monitor) Close() error {
	if ret := nvml.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", nvml.ErrorString(ret))
	}
	return nil
}
