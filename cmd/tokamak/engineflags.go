package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/model"
)

// Scheduler policies (--scheduler-policy), named as TensorRT-LLM names
// its capacity-scheduler policies.
const (
	policyMaxUtilization    = "max-utilization"
	policyGuaranteedNoEvict = "guaranteed-no-evict"
	// policyStaggered is guaranteed-no-evict with admissions paced so
	// that equal requests do not run in waves (sched.Config.Stagger).
	policyStaggered = "staggered-no-evict"
)

// engineFlags are the engine-sizing flags shared by serve and bench
// throughput; maxSeqs, maxBatchTokens and policy are the command's
// defaults.
func engineFlags(maxSeqs, maxBatchTokens int, policy string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "scheduler-policy", Value: policy, Usage: policyMaxUtilization + " (admit a request on its first chunk's KV blocks, preempt the newest when blocks run out, as vLLM) or " +
			policyGuaranteedNoEvict + " (admit only while the blocks for its prompt plus max_tokens fit beside the running requests' own, each until its end: never preempts; best when max_tokens is set) or " +
			policyStaggered + " (" + policyGuaranteedNoEvict + " with admissions paced to one every (max_tokens x (prompt + max_tokens/2) / KV-cache tokens) steps while others run, so that requests of one length start and end spread out instead of in waves; for offline batches)"},
		&cli.Float64Flag{Name: "kv-cache-gib", Value: 0, Usage: "KV cache size in GiB (0: on a GPU, what --gpu-memory-utilization leaves after the weights and the activations of the largest step; on the CPU, 1)"},
		&cli.IntFlag{Name: "max-num-seqs", Value: maxSeqs, Usage: "most sequences running at once"},
		&cli.IntFlag{Name: "max-num-batched-tokens", Value: maxBatchTokens, Usage: "most tokens in one forward step"},
		&cli.BoolFlag{Name: "enforce-eager", Aliases: []string{"no-cuda-graphs"}, Usage: "run decode steps op by op instead of replaying CUDA graphs captured at start"},
	}
}

// cpuKVBytes is the KV cache of the CPU backend when none is asked for.
const cpuKVBytes = 1 << 30

// kvMargin is device memory left unplanned when the KV cache is sized
// automatically (fragmentation, scratch that grows at run time).
const kvMargin = 1 << 30

// freeBytesReporter is implemented by backends that know how much device
// memory is left (the CUDA backend's arena).
type freeBytesReporter interface{ FreeBytes() int64 }

// kvCacheBytes is the KV budget: --kv-cache-gib when set; otherwise, on
// a backend that reports its free memory, that memory less the
// activations of the largest step (and of the decode graphs' buffers)
// and a margin, like vLLM's sizing from --gpu-memory-utilization; 1 GiB
// on the CPU.
func kvCacheBytes(c *cli.Context, m *model.Model) (int64, error) {
	if gib := c.Float64("kv-cache-gib"); gib != 0 {
		if gib < 0 || gib > 1<<20 {
			return 0, fmt.Errorf("--kv-cache-gib must be positive (or 0 for automatic), got %v", gib)
		}
		return int64(gib * (1 << 30)), nil
	}
	fr, ok := m.Backend().(freeBytesReporter)
	if !ok {
		return cpuKVBytes, nil
	}
	seqs, toks := c.Int("max-num-seqs"), c.Int("max-num-batched-tokens")
	buckets := model.DefaultBuckets()
	graphRows := min(seqs, buckets[len(buckets)-1])
	reserve := m.ActivationBytes(toks, seqs) + m.ActivationBytes(graphRows, graphRows) + kvMargin
	free := fr.FreeBytes()
	kv := free - reserve
	if kv < 256<<20 {
		return 0, fmt.Errorf("no room for a KV cache: %.2f GiB free after the weights, %.2f GiB needed for activations (raise --gpu-memory-utilization, lower --max-num-batched-tokens or --max-num-seqs, or set --kv-cache-gib)",
			float64(free)/(1<<30), float64(reserve)/(1<<30))
	}
	fmt.Fprintf(c.App.ErrWriter, "kv cache: %.2f GiB (%.2f GiB free after the weights, %.2f GiB kept for activations)\n",
		float64(kv)/(1<<30), float64(free)/(1<<30), float64(reserve)/(1<<30))
	return kv, nil
}

// engineConfig is the engine configuration for model m (loaded from dir)
// sized by engineFlags; callers add what is particular to them.
func engineConfig(c *cli.Context, m *model.Model, dir string) (engine.Config, error) {
	kv, err := kvCacheBytes(c, m)
	if err != nil {
		return engine.Config{}, err
	}
	var reserve, stagger bool
	switch p := c.String("scheduler-policy"); p {
	case policyMaxUtilization:
	case policyGuaranteedNoEvict:
		reserve = true
	case policyStaggered:
		reserve, stagger = true, true
	default:
		return engine.Config{}, fmt.Errorf("--scheduler-policy must be %s, %s or %s, got %q", policyMaxUtilization, policyGuaranteedNoEvict, policyStaggered, p)
	}
	return engine.Config{
		ReserveMaxLen:    reserve,
		Stagger:          stagger,
		KVMemoryBytes:    kv,
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
	}, nil
}
