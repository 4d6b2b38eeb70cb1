"""Reference timings for GPU sampling in PyTorch, written the way vLLM does it,
to compare with Tokamak's fused CUDA sampling kernel (BenchmarkSampleFused in
cuda/sample_cuda_test.go; the mode names and batches match its SAMPLE lines).

Input: float32 logits [batch, 128256], torch.randn(...) * 2 (sigma 2),
generated on the GPU with a fixed seed.  Batches 1, 64, 256 by default, or
TOKAMAK_SAMPLE_BATCHES="1,64,256".

Modes:
  greedy            argmax
  temp              T 0.8: softmax(logits/T), argmax(probs / q), q ~ Exp(1)
  minp0.05          T 0.8, min-p 0.05 (vLLM: mask logits where
                    prob < 0.05 * max prob, softmax again), then the race
  topp0.9           T 1, top-p 0.9 as vLLM's apply_top_k_top_p (one
                    ascending sort, softmax, cumsum, mask, scatter back),
                    then softmax and the race
  topk50-topp0.9    T 1, top-k 50 (k-th largest of the same sort as the
                    threshold) then top-p 0.9, then softmax and the race
  greedy-logprobs5  argmax + log_softmax(raw logits) + topk(5) + chosen logprob
  temp-logprobs5    the temp race + log_softmax(raw logits) + topk(5) +
                    chosen logprob

Timing: each (batch, mode) runs the whole sampling function 5 times to warm
up, then 20 times, each timed with CUDA events around the call and a
synchronize after; the MEDIAN is reported in microseconds.  Each mode is
also run through torch.compile (TORCH_SAMPLE_COMPILE_MODE, default: the
default mode; TORCH_SAMPLE_COMPILE=0 skips it); a compile failure is printed
once and only the eager time is reported.  If flashinfer imports, its
sampling kernels are timed too for topp0.9, topk50-topp0.9 and minp0.05.

Output lines:
  TORCH <mode> batch <b>  eager <us> us  compiled <us or -> us
then a summary table.

Run on the device machine:  python3 bench/cuda/torch_sample.py
"""
import os
import statistics
import sys
import time
import warnings

import torch

# Inductor warns at every compile that it split a long softmax reduction;
# the warning says nothing about these timings, so keep it out of the log.
warnings.filterwarnings("ignore", message=r"\s*Online softmax is disabled")

VOCAB = 128256
WARMUP = 5
REPS = 20

# ---------------------------------------------------------------------------
# vLLM-style building blocks
# ---------------------------------------------------------------------------


def apply_temperature(logits, temp):
    # vLLM divides by a per-row temperature tensor of shape [batch].
    # (vLLM does it in place; here the input is reused, so it is out of place.)
    return logits / temp.unsqueeze(1)


def random_sample(probs):
    # vLLM's exponential race: argmax(probs / q), q ~ Exponential(1), which
    # draws from the categorical distribution given by probs.
    q = torch.empty_like(probs)
    q.exponential_()
    return probs.div_(q).argmax(dim=-1).view(-1)


def apply_min_p(logits, min_p):
    # vLLM: softmax, threshold = min_p * max prob, mask logits below it.
    # (vLLM writes logits[~mask] = -inf; masked_fill is the same and keeps
    # torch.compile free of boolean indexing.)
    probs = torch.softmax(logits, dim=-1)
    max_probs = torch.amax(probs, dim=-1, keepdim=True)
    threshold = min_p.unsqueeze(1) * max_probs
    return logits.masked_fill(probs < threshold, -float("inf"))


def apply_top_k_top_p(logits, k, p):
    # vLLM's apply_top_k_top_p: one ascending sort, top-k by threshold on the
    # sorted values, top-p by cumulative sum, then scatter back.
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    if k is not None:
        # the k-th largest value is at index vocab - k of the ascending sort
        kth = logits_sort.size(1) - k.to(torch.long)
        kth_value = logits_sort.gather(1, kth.unsqueeze(dim=1))
        logits_sort.masked_fill_(logits_sort < kth_value, -float("inf"))
    if p is not None:
        probs_sort = logits_sort.softmax(dim=-1)
        probs_sum = torch.cumsum(probs_sort, dim=-1)
        top_p_mask = probs_sum <= 1 - p.unsqueeze(dim=1)
        top_p_mask[:, -1] = False  # always keep the largest
        logits_sort.masked_fill_(top_p_mask, -float("inf"))
    return logits_sort.scatter(dim=-1, index=logits_idx, src=logits_sort)


def gather_logprobs(logits, tokens, n):
    # vLLM returns raw logprobs: log_softmax of the logits before any
    # temperature or filtering, the top n, and the chosen token's logprob.
    # (vLLM also counts the chosen token's rank; that pass is left out.)
    logprobs = logits.log_softmax(dim=-1, dtype=torch.float32)
    top_vals, top_idx = torch.topk(logprobs, n, dim=-1)
    chosen = logprobs.gather(-1, tokens.unsqueeze(-1))
    return tokens, top_vals, top_idx, chosen


# ---------------------------------------------------------------------------
# The modes.  Every function takes the same arguments (per-row parameter
# tensors of shape [batch], as vLLM keeps them) and uses what it needs.
# ---------------------------------------------------------------------------


def mode_greedy(logits, temp, top_p, top_k, min_p):
    return logits.argmax(dim=-1).view(-1)


def mode_temp(logits, temp, top_p, top_k, min_p):
    x = apply_temperature(logits, temp)
    probs = x.softmax(dim=-1, dtype=torch.float32)
    return random_sample(probs)


def mode_minp(logits, temp, top_p, top_k, min_p):
    x = apply_temperature(logits, temp)
    x = apply_min_p(x, min_p)
    probs = x.softmax(dim=-1, dtype=torch.float32)
    return random_sample(probs)


def mode_topp(logits, temp, top_p, top_k, min_p):
    x = apply_temperature(logits, temp)  # temperature 1, still applied as vLLM would
    x = apply_top_k_top_p(x, None, top_p)
    probs = x.softmax(dim=-1, dtype=torch.float32)
    return random_sample(probs)


def mode_topk_topp(logits, temp, top_p, top_k, min_p):
    x = apply_temperature(logits, temp)
    x = apply_top_k_top_p(x, top_k, top_p)
    probs = x.softmax(dim=-1, dtype=torch.float32)
    return random_sample(probs)


def mode_greedy_logprobs(logits, temp, top_p, top_k, min_p):
    tokens = logits.argmax(dim=-1).view(-1)
    return gather_logprobs(logits, tokens, 5)


def mode_temp_logprobs(logits, temp, top_p, top_k, min_p):
    tokens = mode_temp(logits, temp, top_p, top_k, min_p)
    return gather_logprobs(logits, tokens, 5)


# name, function, temperature (the other parameters are fixed below)
MODES = [
    ("greedy", mode_greedy, 1.0),
    ("temp", mode_temp, 0.8),
    ("minp0.05", mode_minp, 0.8),
    ("topp0.9", mode_topp, 1.0),
    ("topk50-topp0.9", mode_topk_topp, 1.0),
    ("greedy-logprobs5", mode_greedy_logprobs, 1.0),
    ("temp-logprobs5", mode_temp_logprobs, 0.8),
]
TOP_P = 0.9
TOP_K = 50
MIN_P = 0.05

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def time_call(fn):
    """Warm up, then the median of REPS event-timed calls, in microseconds."""
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)  # ms -> us
    return statistics.median(times)


def one_line(err):
    """An exception as one short line."""
    text = f"{type(err).__name__}: {err}".strip().replace("\n", " ")
    return text[:300]


def parse_batches():
    env = os.environ.get("TOKAMAK_SAMPLE_BATCHES", "")
    if not env:
        return [1, 64, 256]
    batches = []
    for field in env.split(","):
        n = int(field.strip())
        if n <= 0:
            sys.exit(f"TOKAMAK_SAMPLE_BATCHES: bad batch {field!r}")
        batches.append(n)
    return batches


def flashinfer_cases(fi, temp08):
    """FlashInfer's sampling kernels, called the way vLLM calls them (probs
    for top-p only and min-p, logits for top-k + top-p).  Returns a list of
    (mode name, function taking logits)."""
    s = fi.sampling
    return [
        ("topp0.9", lambda x: s.top_p_sampling_from_probs(x.softmax(dim=-1), TOP_P)),
        ("topk50-topp0.9", lambda x: s.top_k_top_p_sampling_from_logits(x, TOP_K, TOP_P)),
        ("minp0.05", lambda x: s.min_p_sampling_from_probs(
            (x / temp08).softmax(dim=-1), MIN_P)),
    ]


def main():
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    torch.set_grad_enabled(False)
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}  CUDA {torch.version.cuda}  "
          f"GPU {torch.cuda.get_device_name(dev)}", flush=True)

    batches = parse_batches()
    do_compile = os.environ.get("TORCH_SAMPLE_COMPILE", "1") != "0"
    compile_mode = os.environ.get("TORCH_SAMPLE_COMPILE_MODE", "default")
    print(f"vocab {VOCAB}  batches {batches}  warmup {WARMUP}  reps {REPS}  "
          f"compile {'mode ' + compile_mode if do_compile else 'off'}", flush=True)

    # One compiled wrapper a mode; each batch size compiles its own static
    # graph (dynamic=False), three cache entries a mode at the defaults.
    compiled = {}
    if do_compile:
        torch._dynamo.config.cache_size_limit = max(
            torch._dynamo.config.cache_size_limit, len(batches) + 2)
        for name, fn, _ in MODES:
            try:
                if compile_mode == "default":
                    compiled[name] = torch.compile(fn, dynamic=False)
                else:
                    compiled[name] = torch.compile(fn, mode=compile_mode, dynamic=False)
            except Exception as err:  # e.g. no triton
                print(f"torch.compile unavailable: {one_line(err)}", flush=True)
                compiled = {}
                break

    # FlashInfer is optional.
    try:
        import flashinfer  # noqa: F401
        import flashinfer.sampling  # noqa: F401
        fi = flashinfer
        print(f"flashinfer {getattr(flashinfer, '__version__', '?')}: timing its sampling kernels too",
              flush=True)
    except Exception as err:
        fi = None
        print(f"flashinfer absent ({one_line(err)}); torch only", flush=True)

    gen = torch.Generator(device=dev)
    torch.manual_seed(1)  # for the exponential draws
    results = {}     # (mode, batch) -> (eager us, compiled us or None)
    fi_results = {}  # (mode, batch) -> us or None
    failures = set()  # compile failure messages already printed
    t_start = time.time()

    for batch in batches:
        gen.manual_seed(1)
        logits = torch.randn((batch, VOCAB), generator=gen, device=dev,
                             dtype=torch.float32) * 2
        top_p = torch.full((batch,), TOP_P, device=dev, dtype=torch.float32)
        top_k = torch.full((batch,), TOP_K, device=dev, dtype=torch.int32)
        min_p = torch.full((batch,), MIN_P, device=dev, dtype=torch.float32)

        for name, fn, t in MODES:
            temp = torch.full((batch,), t, device=dev, dtype=torch.float32)
            args = (logits, temp, top_p, top_k, min_p)

            eager_us = time_call(lambda: fn(*args))

            compiled_us = None
            cfn = compiled.get(name)
            if cfn is not None:
                try:
                    t0 = time.time()
                    cfn(*args)  # compiles for this batch size
                    torch.cuda.synchronize()
                    compile_s = time.time() - t0
                    compiled_us = time_call(lambda: cfn(*args))
                    print(f"  (compile {name} batch {batch}: {compile_s:.1f} s)", flush=True)
                except Exception as err:
                    msg = one_line(err)
                    if msg not in failures:
                        failures.add(msg)
                        print(f"torch.compile failed for {name} batch {batch}: {msg}", flush=True)
                    compiled_us = None

            results[(name, batch)] = (eager_us, compiled_us)
            c_text = f"{compiled_us:8.1f}" if compiled_us is not None else "       -"
            print(f"TORCH {name:<18} batch {batch:3d}  eager {eager_us:8.1f} us  "
                  f"compiled {c_text} us", flush=True)

        if fi is not None:
            temp08 = torch.full((batch, 1), 0.8, device=dev, dtype=torch.float32)
            for name, call in flashinfer_cases(fi, temp08):
                try:
                    us = time_call(lambda: call(logits))
                    print(f"FLASHINFER {name:<18} batch {batch:3d}  {us:8.1f} us", flush=True)
                except Exception as err:
                    us = None
                    print(f"FLASHINFER {name:<18} batch {batch:3d}  failed: {one_line(err)}",
                          flush=True)
                fi_results[(name, batch)] = us

        del logits
        torch.cuda.empty_cache()

    # Summary: one row a mode, eager / compiled median (us) a batch.
    print(f"\nsummary: median us per call, eager / compiled "
          f"({time.time() - t_start:.0f} s in all)")
    header = f"{'mode':<18}" + "".join(f"{'b' + str(b):>20}" for b in batches)
    print(header)
    for name, _, _ in MODES:
        row = f"{name:<18}"
        for b in batches:
            e, c = results[(name, b)]
            cell = f"{e:.1f} / " + (f"{c:.1f}" if c is not None else "-")
            row += f"{cell:>20}"
        print(row)
    if fi_results:
        print("flashinfer (us per call)")
        for name in ("topp0.9", "topk50-topp0.9", "minp0.05"):
            row = f"{name:<18}"
            for b in batches:
                us = fi_results.get((name, b))
                row += f"{(f'{us:.1f}' if us is not None else '-'):>20}"
            print(row)


if __name__ == "__main__":
    main()
