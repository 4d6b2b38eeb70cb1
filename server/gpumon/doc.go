// Package gpumon supplies GPU memory and utilization for the server's
// /metrics through NVML. It is only functional in binaries built with
// -tags cuda; elsewhere New reports that there is no GPU support.
package gpumon
