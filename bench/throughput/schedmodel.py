# schedmodel.py: a model of the 1000/1000 offline run on H100 (Llama-3.1-8B,
# BF16, 26,371 KV blocks of 16, 512 requests): a decode step costs 7.3 ms
# (compute-bound matmuls above 256 rows) plus its K/V bytes at 2.74 TB/s,
# prompt tokens 22 us each. Compares guaranteed-no-evict with
# max-utilization (admit on the prompt's blocks, preempt the newest and
# recompute when blocks run out), with an optional free-block watermark.
#   python3 bench/throughput/schedmodel.py
CAP = 26371; BS = 16; ISL = 1000; OSL = 1000; N = 512; BUDGET = 16384


def blocks(t):
    return (t + BS - 1) // BS


def run(policy, maxseqs=1024, watermark=0.0, prefcost=22e-6):
    waiting = [[i, ISL, 0] for i in range(N)]  # id, tokens to compute, generated
    running = []  # [id, ctx, generated, blocks held]
    free = CAP; t = 0.0; steps = 0; pre = 0; done = 0; dsteps = 0; bsum = 0
    while done < N:
        steps += 1
        i = 0
        while i < len(running):  # decode growth; preempt the newest when out of blocks
            r = running[i]
            if policy != 'noevict' and r[1] % BS == 0:
                while free < 1 and len(running) > i:
                    v = running.pop(); free += v[3]; pre += 1
                    waiting.insert(0, [v[0], v[1], v[2]])
                if len(running) > i:
                    free -= 1; r[3] += 1
            i += 1
        B = len(running); ctxsum = sum(r[1] for r in running)
        ptoks = 0
        while waiting and len(running) < maxseqs:  # admissions, one chunk each
            w = waiting[0]; tok = w[1]
            if ptoks + tok > BUDGET:
                break
            nb = blocks(ISL + OSL) if policy == 'noevict' else blocks(tok + 1)
            if free - nb < watermark * CAP:
                break
            free -= nb; waiting.pop(0); ptoks += tok
            running.append([w[0], tok, w[2], nb])
        base = 0 if B == 0 else (7.3e-3 if B <= 256 else max(6.5e-3, 2 * B * 8e9 / 650e12) + 0.8e-3)
        t += base + ctxsum * 131072 / 2.74e12 + ptoks * prefcost
        if B:
            dsteps += 1; bsum += B
        kept = []
        for j, r in enumerate(running):
            if j < B:
                r[1] += 1
            r[2] += 1
            if r[2] >= OSL:
                done += 1; free += r[3]
            else:
                kept.append(r)
        running = kept
    return t, N * OSL / t, steps, pre, bsum / max(dsteps, 1)


for pol, wm in [('noevict', 0), ('maxutil', 0), ('maxutil', 0.02), ('maxutil', 0.1)]:
    print(pol, wm, "t=%.1f s tok/s=%.0f steps=%d preemptions=%d mean batch=%.0f" % run(pol, watermark=wm))
