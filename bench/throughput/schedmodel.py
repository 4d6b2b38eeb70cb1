# schedmodel.py: a model of the 1000/1000 offline run on H100 (Llama-3.1-8B,
# BF16, 26,371 KV blocks of 16). A decode step costs a fixed part plus its
# K/V bytes at 2.74 TB/s, a prompt token a fixed cost. Two calibrations:
#   s4: 512 requests, 7.3 ms a step (compute-bound matmuls above 256
#       rows), 22 us a prompt token (session 4);
#   s7: 3,000 requests, 9.04 ms a step and 23.8 us a prompt token, fitted
#       to the session 7 run (419.6 s measured; the model gives 421.9).
# Policies: guaranteed-no-evict (reserve prompt + output blocks), max-
# utilization (admit on the prompt's blocks, preempt the newest and
# recompute when blocks run out; optional free-block watermark), and
# 'peak' (admit while the exact peak of future block use, every sequence
# running to its output length, fits: never evicts), optionally pacing
# admissions to one every PACE steps until step PACE_UNTIL (staggers the
# sequences), and 'stagger' (engine/sched's staggered-no-evict since
# session 9: 'peak' with admissions earning credit at CAP*16 / (OSL *
# (ISL + OSL/2)) a step, at most max(2, twice that) banked, unpaced while
# the pool holds every remaining request at its full length).
# Session 8's figures: python3 bench/throughput/schedmodel.py s7
# (session 9: ... s7 stagger [CAP] for that policy alone).
import sys

CAP = 26371; BS = 16; ISL = 1000; OSL = 1000; BUDGET = 16384
CAL = {'s4': dict(N=512, base0=7.3e-3, prefcost=22e-6),
       's7': dict(N=3000, base0=9.04e-3, prefcost=23.8e-6)}


def blocks(t):
    return (t + BS - 1) // BS


def run(policy, N, base0, prefcost, maxseqs=1024, watermark=0.0, pace=0, pace_until=0):
    waiting = [[i, ISL, 0] for i in range(N)]  # id, tokens to compute, generated
    running = []  # [id, ctx, generated, blocks held]
    free = CAP; t = 0.0; steps = 0; pre = 0; done = 0; dsteps = 0; bsum = 0
    credit = 0.0; rate = CAP * BS / (OSL * (ISL + OSL / 2))
    while done < N:
        steps += 1
        i = 0
        while i < len(running):  # decode growth; preempt the newest when out of blocks
            r = running[i]
            if policy == 'maxutil' and r[1] % BS == 0:
                while free < 1 and len(running) > i:
                    v = running.pop(); free += v[3]; pre += 1
                    waiting.insert(0, [v[0], v[1], v[2]])
                if len(running) > i:
                    free -= 1; r[3] += 1
            i += 1
        B = len(running); ctxsum = sum(r[1] for r in running)
        ptoks = 0; adm = 0
        paced = pace and steps <= pace_until
        if policy == 'stagger':
            paced = (len(waiting) + len(running)) * blocks(ISL + OSL) > CAP
            if paced:
                credit = min(credit + rate, max(2, 2 * rate))
        while waiting and len(running) < maxseqs and (
                not paced or (credit >= 1 or not running if policy == 'stagger' else adm < 1 and steps % pace == 0)):
            w = waiting[0]; tok = w[1]
            if ptoks + tok > BUDGET:
                break
            if policy == 'noevict':
                nb = blocks(ISL + OSL)
                if free - nb < 0:
                    break
            elif policy == 'maxutil':
                nb = blocks(tok + 1)
                if free - nb < watermark * CAP:
                    break
            else:  # peak, stagger
                nb = blocks(tok + 1)
                cand = [(r[1], OSL - r[2]) for r in running] + [(tok, OSL - w[2])]
                if any(sum(blocks(c + s + 1) for c, rm in cand if rm > s) > CAP
                       for s in sorted(set(rm - 1 for _, rm in cand))):
                    break
            if policy == 'stagger' and paced and running:
                credit -= 1
            free -= nb; waiting.pop(0); ptoks += tok; adm += 1
            running.append([w[0], tok, w[2], nb])
        base = 0 if B == 0 else (base0 if B <= 256 else max(base0, base0 - 6.6e-3 + 2 * B * 7.5e9 / 650e12))
        t += base + ctxsum * 131072 / 2.74e12 + ptoks * prefcost
        if B:
            dsteps += 1; bsum += B
        kept = []
        for j, r in enumerate(running):
            if j < B:
                r[1] += 1
            r[2] += 1
            if policy in ('peak', 'stagger'):
                r[3] = blocks(r[1] + 1)
            if r[2] >= OSL:
                done += 1; free += r[3]
            else:
                kept.append(r)
        running = kept
        if policy in ('peak', 'stagger'):
            free = CAP - sum(r[3] for r in running)
    return t, N * OSL / t, steps, pre, bsum / max(dsteps, 1)


cal = CAL[sys.argv[1] if len(sys.argv) > 1 else 's4']
if len(sys.argv) > 2 and sys.argv[2] == 'stagger':
    for cap in sys.argv[3:] or [CAP]:
        CAP = int(cap)
        print('stagger CAP=%d' % CAP, "t=%.1f s tok/s=%.0f steps=%d preemptions=%d mean batch=%.0f" % run('stagger', **cal), flush=True)
    sys.exit(0)
cases = [('noevict', {}), ('maxutil', {}), ('maxutil', dict(watermark=0.02)), ('maxutil', dict(watermark=0.05)),
         ('peak', {}), ('peak', dict(pace=4, pace_until=1000))]
for pol, kw in cases:
    print(pol, kw, "t=%.1f s tok/s=%.0f steps=%d preemptions=%d mean batch=%.0f" % run(pol, **cal, **kw), flush=True)
