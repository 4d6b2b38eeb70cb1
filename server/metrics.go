package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// DeviceSample is one GPU's state at a scrape.
type DeviceSample struct {
	// Index is the device ordinal.
	Index int
	// MemoryUsedBytes and MemoryTotalBytes are device memory in bytes.
	MemoryUsedBytes, MemoryTotalBytes uint64
	// Utilization is the fraction of time a kernel ran over the last
	// sample period (0..1).
	Utilization float64
}

// DeviceMonitor supplies GPU state for /metrics (NVML on CUDA builds).
// Sample is called on each scrape and must be safe for concurrent use.
type DeviceMonitor interface {
	Sample() ([]DeviceSample, error)
}

// latencyBuckets span 1 ms to ~80 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 1.6, 25)

type metrics struct {
	ttft, itl, e2e, queue *prometheus.HistogramVec
	promptTokens          prometheus.Counter
	generationTokens      prometheus.Counter
	requests              *prometheus.CounterVec
	rejected              prometheus.Counter
	inFlight              prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, stats func() (EngineStats, bool), dev DeviceMonitor) *metrics {
	hist := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "tokamak", Name: name, Help: help, Buckets: latencyBuckets,
		}, []string{"model"})
	}
	m := &metrics{
		ttft:  hist("time_to_first_token_seconds", "Time from request arrival to its first generated token."),
		itl:   hist("inter_token_latency_seconds", "Time between consecutive generated tokens of a sequence."),
		e2e:   hist("e2e_request_latency_seconds", "Time from request arrival to its last token."),
		queue: hist("request_queue_time_seconds", "Time a request waited before its prefill started."),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tokamak",
			Name: "prompt_tokens_total", Help: "Prompt tokens of accepted requests."}),
		generationTokens: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tokamak",
			Name: "generation_tokens_total", Help: "Generated tokens."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tokamak",
			Name: "requests_total", Help: "Generation requests by endpoint and HTTP status."}, []string{"endpoint", "status"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tokamak",
			Name: "requests_rejected_total", Help: "Requests refused with 429 because the server or queue was full."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tokamak",
			Name: "http_requests_in_flight", Help: "Generation requests being handled."}),
	}
	reg.MustRegister(m.ttft, m.itl, m.e2e, m.queue, m.promptTokens, m.generationTokens, m.requests, m.rejected, m.inFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&engineCollector{stats: stats}, &deviceCollector{dev: dev})
	return m
}

var (
	descRunning = prometheus.NewDesc("tokamak_num_requests_running", "Sequences running in the engine.", nil, nil)
	descWaiting = prometheus.NewDesc("tokamak_num_requests_waiting", "Sequences waiting in the engine's queue.", nil, nil)
	descKV      = prometheus.NewDesc("tokamak_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0..1).", nil, nil)
	descPrefix  = prometheus.NewDesc("tokamak_prefix_cache_hit_ratio", "Cached prompt tokens over prompt tokens (0..1).", nil, nil)
	descGPUMem  = prometheus.NewDesc("tokamak_gpu_memory_used_bytes", "GPU memory in use.", []string{"gpu"}, nil)
	descGPUTot  = prometheus.NewDesc("tokamak_gpu_memory_total_bytes", "GPU memory in all.", []string{"gpu"}, nil)
	descGPUUtil = prometheus.NewDesc("tokamak_gpu_utilization_ratio", "GPU utilization (0..1).", []string{"gpu"}, nil)
)

// engineCollector samples the engine's load on each scrape.
type engineCollector struct{ stats func() (EngineStats, bool) }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRunning
	ch <- descWaiting
	ch <- descKV
	ch <- descPrefix
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.stats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(st.Running))
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(st.Waiting))
	ch <- prometheus.MustNewConstMetric(descKV, prometheus.GaugeValue, st.KVUsage)
	ch <- prometheus.MustNewConstMetric(descPrefix, prometheus.GaugeValue, st.PrefixHitRatio)
}

// deviceCollector samples GPUs on each scrape.
type deviceCollector struct{ dev DeviceMonitor }

func (c *deviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGPUMem
	ch <- descGPUTot
	ch <- descGPUUtil
}

func (c *deviceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.dev == nil {
		return
	}
	samples, err := c.dev.Sample()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descGPUMem, err)
		return
	}
	for _, s := range samples {
		gpu := strconv.Itoa(s.Index)
		ch <- prometheus.MustNewConstMetric(descGPUMem, prometheus.GaugeValue, float64(s.MemoryUsedBytes), gpu)
		ch <- prometheus.MustNewConstMetric(descGPUTot, prometheus.GaugeValue, float64(s.MemoryTotalBytes), gpu)
		ch <- prometheus.MustNewConstMetric(descGPUUtil, prometheus.GaugeValue, s.Utilization, gpu)
	}
}
