"""Decode speed of Hugging Face transformers on a checkpoint, for comparison
with Tokamak on the same files: batch 1, a prompt of CTX-1 tokens, then NEW
greedy tokens with a static KV cache, eager and (if it works) torch.compile.
The decode rate is (time(1+NEW tokens) - time(1 token)) / NEW, so prefill is
excluded.  usage: python3 hf_decode.py CHECKPOINT [CTX] [NEW]"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM

path = sys.argv[1]
ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 512
new = int(sys.argv[3]) if len(sys.argv) > 3 else 64

# Drop zero-valued rope-scaling fields (a writer that serialises every field
# of its struct gives partial_rotary_factor 0, which transformers takes
# literally: a rotary dimension of 0).
cfg_path = os.path.join(path, "config.json")
with open(cfg_path) as f:
    cfg = json.load(f)
for key in ("rope_scaling", "rope_parameters"):
    if isinstance(cfg.get(key), dict):
        cfg[key] = {k: v for k, v in cfg[key].items() if v not in (0, 0.0, None, "")}
with open(cfg_path, "w") as f:
    json.dump(cfg, f, indent=2)

t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda")
model.eval()
torch.cuda.synchronize()
print(f"HF load {time.time() - t0:.1f} s", flush=True)
ids = torch.randint(0, 1000, (1, ctx - 1), device="cuda")


def timed(n, **kw):
    torch.cuda.synchronize()
    t = time.time()
    with torch.no_grad():
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                       cache_implementation="static", pad_token_id=0, **kw)
    torch.cuda.synchronize()
    return time.time() - t


for name, kw in [("eager", {"disable_compile": True}), ("compile", {})]:
    try:
        timed(new + 1, **kw)  # warm-up (and compilation)
        t1 = timed(1, **kw)
        tn = timed(new + 1, **kw)
        ms = (tn - t1) / new * 1e3
        print(f"HF {name}: {ms:.3f} ms/token => {1e3 / ms:.1f} tok/s (batch 1, ctx {ctx})", flush=True)
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"HF {name}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
