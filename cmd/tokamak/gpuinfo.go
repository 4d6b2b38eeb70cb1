//go:build cuda

package main

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// gpuInfo describes every NVIDIA GPU through NVML (go-nvml loads
// libnvidia-ml at run time): name, memory used/total, utilization,
// temperature, clocks, driver and CUDA versions.
func gpuInfo() (string, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return "", fmt.Errorf("nvml init: %s", nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return "", fmt.Errorf("nvml device count: %s", nvml.ErrorString(ret))
	}
	if n == 0 {
		return "", fmt.Errorf("nvml: no NVIDIA GPU")
	}
	var b strings.Builder
	driver, _ := nvml.SystemGetDriverVersion()
	cudaVer, _ := nvml.SystemGetCudaDriverVersion()
	fmt.Fprintf(&b, "gpu driver:     %s, CUDA %d.%d\n", driver, cudaVer/1000, cudaVer%1000/10)
	for i := 0; i < n; i++ {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return "", fmt.Errorf("nvml device %d: %s", i, nvml.ErrorString(ret))
		}
		name, _ := d.GetName()
		fmt.Fprintf(&b, "gpu %d:          %s\n", i, name)
		if mem, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			fmt.Fprintf(&b, "  memory:       %.1f GiB used of %.1f GiB\n", float64(mem.Used)/(1<<30), float64(mem.Total)/(1<<30))
		}
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			fmt.Fprintf(&b, "  utilization:  %d%% gpu, %d%% memory\n", u.Gpu, u.Memory)
		}
		if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			fmt.Fprintf(&b, "  temperature:  %d C\n", t)
		}
		sm, r1 := d.GetClockInfo(nvml.CLOCK_SM)
		memClk, r2 := d.GetClockInfo(nvml.CLOCK_MEM)
		if r1 == nvml.SUCCESS && r2 == nvml.SUCCESS {
			fmt.Fprintf(&b, "  clocks:       sm %d MHz, memory %d MHz\n", sm, memClk)
		}
	}
	return b.String(), nil
}
