#!/usr/bin/env python3
"""ncu_blocks.py: where a kernel's instructions go, from Nsight Compute's
per-instruction source page (the src-*.csv that run-sample-ncu.sh writes
with SOURCE=...). It groups consecutive SASS instructions executed the same
number of times (straight-line code) and prints the largest groups: address
range, length, executions, instructions executed, share, stall samples.

    python3 bench/cuda/ncu_blocks.py src-temp-logprobs5.csv [more.csv ...]
"""
import csv
import sys


def load(path):
    rows = list(csv.reader(open(path)))
    hdr, data = rows[1], rows[2:]
    ix = {h: i for i, h in enumerate(hdr)}
    e, s = ix["Instructions Executed"], ix["Warp Stall Sampling (All Samples)"]
    base = int(data[0][0], 16)
    return [(int(r[0], 16) - base, float(r[e] or 0), float(r[s] or 0)) for r in data]


def main():
    for path in sys.argv[1:]:
        d = load(path)
        tot = sum(e for _, e, _ in d)
        blocks, cur = [], None
        for a, e, s in d:
            if cur and e == cur[2] and a == cur[1] + 16:
                cur[1], cur[3], cur[4], cur[5] = a, cur[3] + e, cur[4] + 1, cur[5] + s
            else:
                if cur:
                    blocks.append(cur)
                cur = [a, a, e, e, 1, s]
        blocks.append(cur)
        blocks.sort(key=lambda b: -b[3])
        print(path, "total %.1fM instructions" % (tot / 1e6))
        for b in blocks[:25]:
            print("  %6x-%6x n=%4d exec/instr=%9d total=%5.2fM (%4.1f%%) samples=%d"
                  % (b[0], b[1], b[4], b[2], b[3] / 1e6, b[3] / tot * 100, b[5]))


if __name__ == "__main__":
    main()
