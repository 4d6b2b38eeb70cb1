// sample.cu: fused sampling of a whole batch of logit rows, with the
// semantics of engine/sample.Sample (the CPU reference): penalties,
// greedy, temperature, top-k, top-p, min-p, a per-row noise key (the
// request's seeded stream, computed on the host), the chosen token's
// logprob and the top-n logprobs. It never sorts the vocabulary.
//
// Layout: logits [rows, V] f32, row-major (modified in place: penalties
// are written back). params/results: one tk_sample_params /
// tk_sample_result per row; hist_ids/hist_counts hold each row's penalty
// history (distinct token ids and their output counts) at
// [hist_off, hist_off + hist_len).
//
// Bound: reading the logits from memory (4 B a logit a pass; greedy and
// temperature-only rows read them once, and so do min-p-only rows whose
// slices 512-thread blocks read in place unless a warp's candidate list
// overflows, and rows with top-k <= 64 and no logprobs, whose top k the
// max pass lists (KList; the kernel built with it when the host flags
// such rows); logprobs add no pass), and the race's hash, about 20 ops a
// logit, whose latency the scan hides with straight-line groups of four.
// A row is sampled by a cluster of C
// thread blocks, block r owning ids [r*S, (r+1)*S), S = V/C rounded up to
// 4; the blocks exchange per-slice results (max, masses, histograms, race
// winners, top-n keys) through distributed shared memory, one cluster
// barrier an exchange. C is the most that keeps the whole batch on the
// chip at once: on Hopper C = 8 (512 threads, two blocks an SM) up to 33
// rows, each block copying its slice into shared memory once so that only
// the first pass touches DRAM; C = 2 (1024 threads, one block an SM) up to
// 66 rows, reading half rows from global memory, where the second and later
// passes hit L2; above that, and before Hopper, C = 1 (512 threads, two
// blocks an SM). Any C stages its slice in shared memory when it fits
// (small vocabularies); an unstaged slice streams through a per-thread
// cp.async ring in the scans that vote (for_each_wq).
//
// Weights are engine/sample's table exponential, bit for bit:
// y = (l - max) * w_scale (w_scale = 1024*log2(e)/T from the host),
// q = round-to-even(y), w = 2^(q>>10) * 2^((q&1023)/1024) from a
// 1,024-entry mantissa table uploaded by the host (tk_sample_set_exp_table).
// It costs ~10 integer/float ops instead of ~30 for an accurate exp, which
// kept the previous kernel compute-bound. Since w depends on q only,
// top-k / top-p find their cut in three exact steps: a histogram over
// q>>6 (2,017 buckets: each a weight ratio of 1.044) finds the bucket, a
// 64-entry histogram over its q values finds the exact q, and the tokens
// with that q (equal weights) are gathered and sorted by rank (logit
// descending, id ascending) to pick the cut; when more than fit share it
// (near-flat rows, or more than 256 in one block), a bisection over the
// rank key finds it instead. Masses in histograms are 2^-32 fixed-point
// integers (engine/sample's fixedOf), so every cut sum is exact,
// independent of thread order and equal to the CPU's: both backends cut at
// the same token. The draw is engine/sample's exponential race
// (race.go), op for op: the survivor with the largest
// l*w_scale + G(hash(noise_key, id)) wins, ties to the lowest id; each
// thread keeps its own winner over its ids (ascending), skipping the two
// logarithms of G whenever G's cheap upper bound (from the hash's leading
// zeros) cannot lift the token past that winner, and the block and the
// cluster reduce the winners. A row without top-k, top-p or min-p runs the
// race in the max pass itself, so it reads its logits once; greedy rows
// stop after the max pass. A min-p-only row lists its possible survivors
// in the max pass (MinpList) and races over the list. A top-p row (0.8 or
// more, no top-k, min-p or logprobs) that one block samples keeps its best
// race keys in the max pass and counts its tokens by quantized exponent,
// then cuts among the keys from the counts (tp_scan, tp_finish): one read
// instead of four.
#include <cooperative_groups.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include <type_traits>

#include "common.cuh"

namespace cg = cooperative_groups;

namespace {

// Threads a block: 1024 with two blocks a row, else 512 (two blocks an
// SM; TOKAMAK_SAMPLE_C1_THREADS=1024 for one block a row). Loops stride by
// blockDim.x.
constexpr int kMaxNW = 32;
constexpr int kQBits = 10;
constexpr int kQSize = 1 << kQBits;  // == TK_SAMPLE_EXP_TABLE
constexpr float kYMin = -129024.f;   // -126 * 1024: below it the weight is 0
constexpr int kB2Bits = 6;
constexpr int kB2 = 1 << kB2Bits;               // q values per level-1 bucket
constexpr int kB1 = ((126 << kQBits) >> kB2Bits) + 1;  // level-1 buckets over -q
constexpr int kLocalCap = 256;                  // exact-q members one block lists
constexpr int kGatherCap = 1024;                // members gathered and sorted (power of two)
// The dynamic shared memory's regions (the staged slice, the histograms)
// are rounded up to 128 bytes, so that every region after them, the copy
// ring above all, starts a 128-byte line of shared memory (see dyn in
// sample_kernel).
__host__ __device__ constexpr size_t round128(size_t b) { return (b + 127) & ~(size_t)127; }
__host__ __device__ constexpr size_t hist1_bytes() { return round128((size_t)kB1 * 8); }
__host__ __device__ constexpr size_t own_bytes(int C) { return round128((size_t)((kB1 + C - 1) / C) * 8); }
// slice_len is S, the ids a block of C owns in a row of V (rounded up to
// 4); stage_bytes the shared memory that stages such a slice.
__host__ __device__ constexpr int slice_len(int V, int C) { return ((V + C - 1) / C + 3) & ~3; }
__host__ __device__ constexpr size_t stage_bytes(int S) { return round128((size_t)S * 4); }
constexpr int kMaxCluster = 16;
constexpr float kFix = 4294967296.0f;  // 2^32: fixed-point masses (w <= 1), engine/sample's fixedOf
constexpr int kLogSize = TK_SAMPLE_LOG_TABLE / 2;  // logarithm intervals of a mantissa
constexpr int kTopReg = 5;  // top logprobs a thread keeps in registers in the max pass

// Status codes written into tk_sample_result.status.
constexpr int kOK = 0;
constexpr int kNoFinite = 1;
constexpr int kPosInf = 2;

// g_prof: SM clock at each phase of row 0's block 0 in the last launch
// (tk_sample_phase_clocks; benchmarks only).
__device__ long long g_prof[32];
__device__ __forceinline__ void prof(int i) {
  if (blockIdx.x == 0 && threadIdx.x == 0) g_prof[i] = clock64();
}

// g_blk: each block's SM, start and end (%globaltimer, ns) in the last
// launch with TK_SAMPLE_BLOCK_TIMES (tk_sample_block_times; benchmarks
// only), and how many blocks it had.
constexpr int kBlkMax = TK_SAMPLE_BLOCK_TIMES_MAX;
__device__ unsigned long long g_blk[kBlkMax][3];
int g_blk_count = 0;
// block_time records, with TK_SAMPLE_BLOCK_TIMES, the block's SM and
// start (k = 1) or its end (k = 2; at every return of the kernel). The
// flags come from the kernel's parameters each time: a flag kept in a
// register through the kernel added spills.
__device__ __forceinline__ void block_time(int flags, int k) {
  if (!(flags & TK_SAMPLE_BLOCK_TIMES) || threadIdx.x != 0 || blockIdx.x >= kBlkMax) return;
  if (k == 1) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    g_blk[blockIdx.x][0] = sm;
  }
  g_blk[blockIdx.x][k] = gtime();
}

// The exponential's mantissa table and the race's logarithm table
// (engine/sample's, uploaded once).
__device__ unsigned g_exp_mant[kQSize];
__device__ float2 g_log_tab[kLogSize];
// rows the one-read top-p drew and sent to the cut passes (tk_sample_topp_counts)
__device__ unsigned long long g_tp_counts[2];
bool g_exp_table_set = false, g_log_table_set = false;

// fix maps NaN to -Inf (the reference does) and -0 to +0 (they compare
// equal, so they must rank by id alone).
// Two instructions: fmaxf returns its other operand for a NaN, and
// -0 + +0 is +0 when rounding to nearest.
__device__ __forceinline__ float fix(float x) { return __fadd_rn(fmaxf(x, -INFINITY), 0.f); }

// ex2 is 2^x by the special-function unit, subnormal results flushed to 0
// (for sums of exp(l - max), where they cannot matter): one instruction,
// where exp2f adds a range fix-up around it. ex2(-Inf) = 0.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// q_of is engine/sample's qOf: x * ws rounded to the nearest integer
// (ties to even), the product clamped to +-2^62 (the conversion runs at a
// quarter of the FP32 rate: weight's fast path rounds by an add instead).
__device__ __forceinline__ long long q_of(float x, float ws) {
  return __float2ll_rn(fminf(fmaxf(__fmul_rn(x, ws), -0x1p62f), 0x1p62f));
}

// QRef is a row's reference for weights: the maximum's quantized exponent
// mq = q_of(max), and whether it is small enough for weight's fast path
// (|mq| < 2^21: every product above plo = mq32 + kQMin - 1 lies within
// +-2^22, where an add rounds it).
struct QRef {
  long long mq;
  int mq32;
  float plo;
  bool fast;
};
__device__ __forceinline__ QRef qref(float maxl, float ws) {
  QRef r;
  r.mq = q_of(maxl, ws);
  r.fast = r.mq > -(1ll << 21) && r.mq < (1ll << 21);
  r.mq32 = r.fast ? (int)r.mq : 0;
  r.plo = (float)(r.mq32 + (int)kYMin - 1);  // exact: under 2^22 in magnitude
  return r;
}

// weight_q_slow is weight's q where the maximum's q_of is 2^21 or more in
// magnitude (tiny temperatures, huge logits): out of line, so that the
// cut passes' loops keep their registers.
__device__ __noinline__ int weight_q_slow(float x, long long mq, float ws) {
  const long long d = q_of(x, ws) - mq;
  return x == -INFINITY || d < (long long)kYMin ? INT_MIN : (int)d;
}

// weight is engine/sample's weightQ, op for op, for x <= the row's
// maximum: q = q_of(x) - r.mq gets the quantized exponent (INT_MIN when the
// weight is 0).
__device__ __forceinline__ float weight(float x, const QRef &r, float ws, const unsigned *tab, int &q) {
  if (r.fast) {
    const float y = __fmul_rn(x, ws);
    if (!(y > r.plo)) {  // then q < kYMin; also -Inf
      q = INT_MIN;
      return 0.f;
    }
    // round to nearest even as an add: y + 1.5 * 2^23 lands in
    // [2^23, 2^24), where floats are the integers, and its bits count them
    q = __float_as_int(__fadd_rn(y, 12582912.f)) - 0x4B400000 - r.mq32;
  } else {
    q = weight_q_slow(x, r.mq, ws);
  }
  if (q < (int)kYMin) {
    q = INT_MIN;
    return 0.f;
  }
  return __uint_as_float(((unsigned)((q >> kQBits) + 127) << 23) | tab[q & (kQSize - 1)]);
}

// mass_of is engine/sample's fixedOf: w in 2^-32 fixed point, 0 for
// w <= 2^-32.
__device__ __forceinline__ unsigned long long mass_of(float w) {
  return w > 0x1p-32f ? __float2ull_rn(__fmul_rn(w, kFix)) : 0ull;
}

// q_window returns a logit interval holding every x whose quantized
// exponent (weight's q) lies in [qa, qb] (qb <= 0), widened well past the
// roundings of x * ws and of the maximum's own (q is q_of(x) - q_of(max),
// within 1 of (x - max) * ws) and of the bounds: a two-compare pre-filter
// before the exact test, which the cut's narrow passes would otherwise run
// on every logit (they are instruction-bound). No filter where the
// products reach the clamp of q_of.
__device__ __forceinline__ float2 q_window(float maxl, float ws, int qa, int qb) {
  if (!(fabsf(__fmul_rn(maxl, ws)) < 0x1p60f)) return make_float2(-INFINITY, INFINITY);
  const float ca = ((float)qa - 1.5f) / ws, cb = ((float)qb + 1.5f) / ws;
  const float m = (fabsf(maxl) + fabsf(ca) + 1.f / ws) * 0x1p-18f;
  return make_float2(maxl + ca - m, maxl + cb + m);
}

// minp_q is min-p's bound as a quantized exponent (weight's q), widened
// by 4: every token of weight >= min_p has q >= minp_q(min_p).
__device__ __forceinline__ int minp_q(float min_p) { return (int)floorf(1024.f * log2f(min_p)) - 4; }

__device__ __forceinline__ float weight_of_q(int q, const unsigned *tab) {
  return __uint_as_float(((unsigned)((q >> kQBits) + 127) << 23) | tab[q & (kQSize - 1)]);
}

// rank_key orders tokens as the reference ranks them: a larger key ranks
// earlier (higher logit, ties by lower id). Every key is > 0.
__device__ __forceinline__ unsigned long long rank_key(float x, int i) {
  unsigned u = __float_as_uint(x);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ((unsigned long long)u << 32) | (unsigned long long)(0xFFFFFFFFu - (unsigned)i);
}

__device__ __forceinline__ int key_id(unsigned long long k) {
  return (int)(0xFFFFFFFFu - (unsigned)(k & 0xFFFFFFFFull));
}

// The race (engine/sample/race.go), op for op: every float op rounded on
// its own (the _rn intrinsics are never contracted into FMAs).
// log2t is log2f: log2(x) for a normal positive x.
__device__ __forceinline__ float log2t(float x, const float2 *lt) {
  const unsigned b = __float_as_uint(x);
  const float e = (float)((int)(b >> 23) - 127);
  const float2 t = lt[(b >> (23 - 7)) & (kLogSize - 1)];
  const float m = __uint_as_float((b & 0x7fffffu) | 0x3f800000u);
  const float r = __fsub_rn(__fmul_rn(m, t.x), 1.f);
  const float p = __fmul_rn(
      r, __fadd_rn(0x1.715476p+0f, __fmul_rn(r, __fadd_rn(-0x1.715476p-1f, __fmul_rn(r, 0x1.ec709ep-2f)))));
  return __fadd_rn(__fadd_rn(e, t.y), p);
}

// fmix32_pre is fmix32 without its last xorshift (which changes only
// the low 16 bits).
__device__ __forceinline__ unsigned fmix32_pre(unsigned x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x;
}

__device__ __forceinline__ unsigned fmix32(unsigned x) {
  x = fmix32_pre(x);
  return x ^ (x >> 16);
}

// note_hash is a stand-in for noise_hash(key, i) (x = i * 0x9e3779b9 +
// key's low half, hc = hi ^ (hi >> 16), hi = key's high half) in tests
// of clz(h) >= k, one instruction cheaper: fmix32_pre(x) ^ hc has the
// same leading zeros as h up to 16 and the same bits when it has 16 or
// more. (With p = fmix32_pre(x): h = p ^ (p >> 16) ^ hi. Both have high
// half p_hi ^ hi_hi; where that is 0, p_hi = hi_hi and both low halves
// are p_lo ^ hi_lo ^ hi_hi.) The scans' notes use it; every key uses
// noise_hash.
__device__ __forceinline__ unsigned note_hash(unsigned x, unsigned hc) { return fmix32_pre(x) ^ hc; }

// noise_hash is noiseHash: token i's 32 random bits under the row's key.
__device__ __forceinline__ unsigned noise_hash(unsigned long long key, int i) {
  return fmix32((unsigned)i * 0x9e3779b9u + (unsigned)key) ^ (unsigned)(key >> 32);
}

// noise_bound is noiseBound: G <= 1024 * clz(h) + 512.
__device__ __forceinline__ float noise_bound(unsigned h) { return (float)(1024 * __clz((int)h) + 512); }

// may_win is a cheaper, looser form of y + noise_bound(h) >= thr
// (y = x * ws) for the scan (clz and int-to-float conversions are
// quarter-rate): with thr512 = thr - 512 - |thr| * 2^-21 (Race::set_thr),
// t1024 = thr512 / 1024 and nws = -ws / 1024 (both exact), it holds when
// clz(h) >= rn((thr512 - x * ws) / 1024), one FMA, which the exact test
// implies (rounding to nearest never exceeds the exact test's ceiling,
// and the margin covers the rounding of the floats, up to keys of 2^40
// and beyond). So it may keep a token the exact test drops, never the
// reverse.
__device__ __forceinline__ bool may_win(float x, unsigned h, float nws, float t1024) {
  // z >= 0 (NaN -> 0); rn(z) by the 1.5*2^23 trick, huge (or +Inf) z
  // giving a huge k that the clamped shift turns into "h == 0"
  const float z = fmaxf(__fmaf_rn(x, nws, t1024), 0.f);
  const int k = __float_as_int(__fadd_rn(z, 12582912.f)) - 0x4B400000;
  return h <= __funnelshift_rc(0xffffffffu, 0u, (unsigned)k);  // clz(h) >= k
}

// noise_of is noiseOf: G = -1024*log2(-log2(1 - V)), V = (h + 1/2) 2^-32.
__device__ __forceinline__ float noise_of(unsigned h, const float2 *lt) {
  float v = __fmul_rn(__fadd_rn(__uint2float_rn(h), 0.5f), 0x1p-32f);
  v = fminf(v, 0x1.fffffep-1f);
  float a;
  if (v < 0.125f) {  // the series of -log2(1 - v): 1 - v would drop v's low bits
    float t = 0x1.ec709ep-3f;
    t = __fadd_rn(0x1.2776c6p-2f, __fmul_rn(v, t));
    t = __fadd_rn(0x1.715476p-2f, __fmul_rn(v, t));
    t = __fadd_rn(0x1.ec709ep-2f, __fmul_rn(v, t));
    t = __fadd_rn(0x1.715476p-1f, __fmul_rn(v, t));
    t = __fadd_rn(0x1.715476p+0f, __fmul_rn(v, t));
    a = __fmul_rn(v, t);
  } else {
    a = -log2t(__fsub_rn(1.f, v), lt);
  }
  return __fmul_rn(-1024.f, log2t(a, lt));
}

// race_better reports whether (k2, i2) beats (k, i): a larger key, ties to
// the lower id (none is (-Inf, INT_MAX)).
__device__ __forceinline__ bool race_better(float k2, int i2, float k, int i) {
  return k2 > k || (k2 == k && i2 < i);
}

// f2ord maps a float to an unsigned in the same order (ord2f inverts it),
// for a shared atomicMax over keys.
__device__ __forceinline__ unsigned f2ord(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float ord2f(unsigned u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

// queue_group appends to a warp's buffer buf (cnt entries, warp-uniform)
// the ids pbase + e of the set bits e of each lane's pend: one vote a bit,
// lanes in order. Warp-uniform.
__device__ __forceinline__ void queue_group(int *buf, int &cnt, unsigned pend, int pbase) {
  const unsigned below = (1u << (threadIdx.x & 31)) - 1;
#pragma unroll
  for (int e = 0; e < 4; e++) {
    const bool need = (pend >> e) & 1u;
    const unsigned mk = __ballot_sync(0xffffffffu, need);
    if (need) buf[cnt + __popc(mk & below)] = pbase + e;
    cnt += __popc(mk);
  }
}

// Race is one thread's share of a block's race. Every token offered gets
// its hash and a cheap bound of its noise; only a token whose bound
// reaches thr (the best key any warp of the block has found so far: below
// it a token cannot win) is a candidate, its id queued in its warp's
// buffer; the scan's caller flushes 32 candidates at a time, keyed one a
// lane, so the two logarithms cost nothing for the vast majority of tokens
// and never diverge a warp. Warp-uniform: every lane calls add for every
// step, and drain after every group of four ids (i & ~3 alike) or sooner.
constexpr int kRaceBuf = 160;  // 31 left + 4 * 32 added between drains
constexpr int kRaceWarpBytes = kRaceBuf * 4;
struct Race {
  float ws;
  unsigned long long nk;
  const float2 *lt;
  const float *xs;  // the slice's logits (re-read for a candidate)
  int lo;
  float bk = -INFINITY;  // this lane's winner so far
  int bi = INT_MAX;
  float thr = -INFINITY;     // the same in every lane in practice (each lane's is a valid bound)
  float thr512 = -INFINITY;  // thr - 512
  float t1024 = -INFINITY;   // thr512 / 1024
  float t32 = -INFINITY;     // add4v's t1024 / 32, floored (init_t32)
  float nws;                 // -ws / 1024
  int cnt = 0;               // warp-uniform: buffered candidates
  int *bid;
  unsigned *block_thr;  // f2ord of the block's best key so far (shared)

  __device__ void set_thr(float t) {
    thr = t;
    // 512 past the bound's 482.5, and |t| * 2^-21 for the roundings of
    // may_win's and the exact test's sums once keys reach ~2^32 (tiny
    // temperatures: a float step of 512 or more)
    thr512 = __fsub_rn(t, __fadd_rn(512.f, __fmul_rn(fabsf(t), 0x1p-21f)));
    t1024 = __fmul_rn(thr512, 1.f / 1024.f);
    init_t32();
  }

  // init_t32 sets add4v's t32 = t1024 / 32 (exact), with -Inf (no bound
  // yet; a NaN from thr = +Inf too) as -FLT_MAX where -nws <= 32 (ws <=
  // 32768, temperatures from ~0.045): every finite x * nws / 32 + -FLT_MAX
  // is then <= 0, so every finite or +Inf logit is still noted, and -Inf
  // only when its hash is 0. (With -Inf there, rows of mostly -Inf
  // logits, as a grammar leaves them, flushed each -Inf until a bound:
  // top-p at 256 rows of 64 finite logits 167 us against 87, H100,
  // session 19.) Called once nws is set, and by set_thr.
  __device__ __forceinline__ void init_t32() {
    t32 = fmaxf(__fmul_rn(t1024, 1.f / 32.f), nws >= -32.f ? -FLT_MAX : -INFINITY);
  }

  // flush keys the last take buffered candidates that keep(id, logit)
  // accepts, then raises thr.
  template <typename Keep>
  __device__ void flush(int take, Keep &keep) {
    const int lane = threadIdx.x & 31;
    __syncwarp();
    if (lane < take) {
      const int i = bid[cnt - take + lane];
      const float x = fix(xs[i - lo]);
      const unsigned h = noise_hash(nk, i);
      const float y = __fmul_rn(x, ws);
      // -Inf (and NaN, fixed to it) as add4's floor: add4v may note them
      if (x > -INFINITY && !(__fadd_rn(y, noise_bound(h)) < thr) && keep(i, x)) {
        const float k = __fadd_rn(y, noise_of(h, lt));
        if (race_better(k, i, bk, bi)) {
          bk = k;
          bi = i;
        }
      }
    }
    cnt -= take;
    float m = bk;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0 && m > -INFINITY) atomicMax(block_thr, f2ord(m));
    __syncwarp();
    set_thr(fmaxf(thr, fmaxf(m, ord2f(*(volatile unsigned *)block_thr))));
  }

  // add4 offers the ids i0 .. i0 + 3 with raw logits xv; a logit below
  // fl (>= -FLT_MAX, so -Inf never is) or NaN is never a candidate, and
  // -0 acts as +0 (as fix would make them). It only notes which ids may
  // win (bit e of pend for id i0 + e): no vote, no branch, so the four
  // hashes overlap; drain queues the group.
  unsigned pend = 0;
  int pbase = 0;
  __device__ __forceinline__ void add4(int i0, float4 xv, float fl) {
    const unsigned h0 = (unsigned)i0 * 0x9e3779b9u + (unsigned)nk, hi = (unsigned)(nk >> 32);
    auto one = [&](unsigned e, float x) {  // noise_hash(nk, i0 + e)'s leading zeros
      const unsigned h = note_hash(h0 + e * 0x9e3779b9u, hi ^ (hi >> 16));
      return (unsigned)((x >= fl) & may_win(x, h, nws, t1024)) << e;
    };
    pend |= one(0, xv.x) | one(1, xv.y) | one(2, xv.z) | one(3, xv.w);
    pbase = i0;
  }

  // add4v is add4 without a floor, for the scans that test every logit,
  // about two instructions a token fewer by construction (the floor's
  // compare and the clamp's max): may_win's clamp and shift made one FMA
  // with saturation and a shift of h. z / 32 = sat(x * nws32 + t32)
  // (nws32 = nws / 32, t32 = t1024 / 32: scaling by 2^-5 is exact), j =
  // 32 - rn(32 * z / 32) by the 1.5 * 2^23 trick (ties to even
  // as may_win), and clz(h) >= k as h >> min(j, 32) == 0. For a finite or
  // +Inf logit it notes the same ids as may_win, for any thr (t32 as
  // init_t32 sets it). It may also note -Inf (when the id's hash is 0, or
  // while thr is -Inf at temperatures below ~0.045) and NaN (always):
  // flush and flush_e drop those, as add4's floor would. Only ids of the
  // slice are noted: bit e of valid for id i0 + e (the padding past the
  // slice's end is -Inf under ids that are not the slice's, or that
  // another group offers).
  __device__ __forceinline__ void add4v(int i0, float4 xv, unsigned valid, float nws32) {
    const unsigned h0 = (unsigned)i0 * 0x9e3779b9u + (unsigned)nk, hi = (unsigned)(nk >> 32);
    auto one = [&](unsigned e, float x) {  // noise_hash(nk, i0 + e)'s leading zeros
      const unsigned h = note_hash(h0 + e * 0x9e3779b9u, hi ^ (hi >> 16));
      float z;
      asm("fma.rn.sat.f32 %0, %1, %2, %3;" : "=f"(z) : "f"(x), "f"(nws32), "f"(t32));
      const unsigned j = (unsigned)(__float_as_int(__fmaf_rn(z, -32.f, 12582944.f)) - 0x4B400000);
      return (unsigned)(__funnelshift_rc(h, 0u, j) == 0u) << e;
    };
    pend |= (one(0, xv.x) | one(1, xv.y) | one(2, xv.z) | one(3, xv.w)) & valid;
    pbase = i0;
  }

  // seed raises thr to the best key among one id a lane (id < end; the
  // winner's key is at least any survivor's, so the first steps of a
  // scan do not queue every token). For rows without cuts.
  __device__ void seed(int i, int end) {
    float k = -INFINITY;
    if (i < end) {
      const float x = fix(xs[i - lo]);
      if (x > -INFINITY) k = __fadd_rn(__fmul_rn(x, ws), noise_of(noise_hash(nk, i), lt));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) k = fmaxf(k, __shfl_xor_sync(0xffffffffu, k, o));
    if (k > thr && k < INFINITY) {
      set_thr(k);
      if ((threadIdx.x & 31) == 0) atomicMax(block_thr, f2ord(k));
    }
  }

  // drain queues the noted candidates, then keys full batches of them;
  // last: every candidate left. A warp with candidates first raises thr
  // to the block's best key so far (other warps' flushes), which the
  // next groups' notes then test against. (Reading it after every group
  // cost ~13 instructions a group, the shared address included.)
  template <typename Keep>
  __device__ __forceinline__ void drain(Keep &keep, bool last = false) {
    drain_to([&](int take) { flush(take, keep); }, last);
  }

  // drain_to is drain with the flush of take candidates given (RaceM
  // pools them instead of keeping a winner a lane).
  template <typename Flush>
  __device__ __forceinline__ void drain_to(Flush flush_take, bool last) {
    if (__ballot_sync(0xffffffffu, pend != 0)) {
      const float b = ord2f(*(volatile unsigned *)block_thr);
      if (b > thr) set_thr(b);
      queue_group(bid, cnt, pend, pbase);
      pend = 0;
      while (cnt >= 32) flush_take(32);
    }
    if (last && cnt > 0) flush_take(cnt);
  }
};

// top_insert puts rank key k into a thread's sorted list tk of its
// kTopReg best keys (0: empty) if it beats the last; reports whether it did.
__device__ __forceinline__ bool top_insert(unsigned long long (&tk)[kTopReg], unsigned long long k) {
  if (k > tk[kTopReg - 1]) {
    tk[kTopReg - 1] = k;
#pragma unroll
    for (int j = kTopReg - 1; j > 0; j--) {
      const unsigned long long a = tk[j - 1], b = tk[j];
      tk[j - 1] = b > a ? b : a;
      tk[j] = b > a ? a : b;
    }
    return true;
  }
  return false;
}

// WarpList is one warp's list of ids whose logit reaches a floor xfl,
// made during a scan: the scan notes a group of four ids pbase .. +3 as
// bits of pend (no branch), append queues them with one vote, and prune
// drops ids, re-reading their logits (when xfl rose). Warp-uniform:
// append after every group.
struct WarpList {
  int *ids;  // this warp's share of the list space
  int cap;   // its capacity (a multiple of 32, >= 256)
  int cnt = 0;
  float xfl = -INFINITY;
  unsigned pend = 0;
  int pbase = 0;

  __device__ __forceinline__ void append() {
    if (__ballot_sync(0xffffffffu, pend != 0)) {
      queue_group(ids, cnt, pend, pbase);
      pend = 0;
      __syncwarp();  // the lanes' writes before any lane reads the list
    }
  }

  // full: no room for another group of four ids a lane
  __device__ __forceinline__ bool full() const { return cnt > cap - 128; }

  // prune keeps the ids for which keep(id, logit) holds, in order.
  template <typename K>
  __device__ void prune(const float *xs, int lo, K keep) {
    const int lane = threadIdx.x & 31;
    const unsigned below = (1u << lane) - 1;
    int out = 0;
    for (int b = 0; b < cnt; b += 32) {
      const int j = b + lane;
      int id = 0;
      bool k = false;
      if (j < cnt) {
        id = ids[j];
        k = keep(id, fix(xs[id - lo]));
      }
      const unsigned mk = __ballot_sync(0xffffffffu, k);
      __syncwarp();  // every lane has read its entry before any is overwritten
      if (k) ids[out + __popc(mk & below)] = id;
      out += __popc(mk);
      __syncwarp();
    }
    cnt = out;
  }
};

// MinpList is the WarpList of the ids that may survive a min-p cut, made
// during the max pass so that the race keys only them instead of reading
// the row a second time. A token survives when its weight
// exp((l - max) / T) is at least min_p; every survivor's logit is at
// least xfl(max), q_window's widened bound, and xfl grows with max, so
// xfl of the block's max so far (a lower bound of the row's) never drops
// a survivor. The list is pruned by the latest xfl when it fills; a warp
// whose list stays full after pruning (flat rows, tiny min_p) sets over,
// and its block then reads the row again (the race pass of cut rows).
// -Inf and NaN are never listed (xfl starts at -FLT_MAX).
struct MinpList {
  WarpList w;
  bool over = false;
  float seen = -INFINITY;  // the block max w.xfl was made from
  float pub = -INFINITY;   // this thread's max as last published
  int qmin;
  float ws;
  unsigned *block_max;  // f2ord of the block's max so far (shared)

  // group lists the noted ids, publishes this thread's max m, raises xfl
  // to the block's max and prunes the list when it is near full.
  __device__ __forceinline__ void group(float m, const float *xs, int lo) {
    if (!over) w.append();
    w.pend = 0;
    if (m > pub) {
      pub = m;
      atomicMax(block_max, f2ord(m));
    }
    // any value a lane reads is a lower bound of the row's max (lanes may
    // differ: each keeps a valid floor)
    const float bm = ord2f(*(volatile unsigned *)block_max);
    if (bm > seen) {
      seen = bm;
      w.xfl = fmaxf(w.xfl, q_window(bm, ws, qmin, 0).x);
    }
    if (w.full() && !over) {
      const float f = w.xfl;
      w.prune(xs, lo, [f](int, float x) { return x >= f; });
      over = w.full();
    }
  }
};

// warp_best_keys finds the R best distinct keys among n keys that get(j)
// reads, best first, and calls each(r, key) with the r-th; it stops at the
// first round that finds none (0), and returns the last key found (0 if
// fewer than R): R rounds of a warp max. Warp-uniform.
template <int R, typename G, typename E>
__device__ unsigned long long warp_best_keys(int n, G get, E each) {
  unsigned long long prev = ~0ull, k = 0;
  for (int r = 0; r < R; r++) {
    k = 0;
    for (int j = (int)(threadIdx.x & 31); j < n; j += 32) {
      const unsigned long long kk = get(j);
      if (kk < prev && kk > k) k = kk;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const unsigned long long t = __shfl_xor_sync(0xffffffffu, k, o);
      k = t > k ? t : k;
    }
    if (k == 0) break;  // warp-uniform
    each(r, k);
    prev = k;
  }
  return k;
}

// TopList is the WarpList of the ids that may be among the block's kTopReg
// best (rank keys), made during the max pass. xfl is a logit with
// kTopReg ids at or above it, so a smaller logit cannot rank among the
// best (an equal one is listed for the key compare): when the list
// reaches kTopPrune ids it is cut to its kTopReg best keys, which the warp
// publishes in its row of pub (the block's table: kTopReg keys a warp, 0
// for none); the kTopReg-th best distinct key of the whole table is then
// the block's floor (kTopReg distinct tokens reach it), shared through
// block_thr. Until the first bound every id is listed, -Inf and NaN too
// (the reference ranks them as -Inf).
constexpr int kTopPrune = 16;  // a TopList is cut to its kTopReg best at this many ids
struct TopList {
  WarpList w;
  unsigned *block_thr;       // f2ord of the block's floor (shared)
  unsigned long long *pub;   // the block's table of published keys (shared)

  // kth_best returns the kTopReg-th best distinct key among n keys that
  // get(j) reads (0 if fewer).
  template <typename G>
  __device__ static unsigned long long kth_best(int n, G get) {
    return warp_best_keys<kTopReg>(n, get, [](int, unsigned long long) {});
  }

  // group queues the group's noted ids; only a warp that listed some
  // reads the block's floor (a stale floor is lower: more is listed, no
  // id is missed) and prunes.
  __device__ __forceinline__ void group(const float *xs, int lo) {
    if (!__ballot_sync(0xffffffffu, w.pend != 0)) return;
    w.append();
    w.xfl = fmaxf(w.xfl, ord2f(*(volatile unsigned *)block_thr));
    if (w.cnt >= kTopPrune) {
      const int lane = (int)(threadIdx.x & 31);
      // the kTopReg-th best key of the list; the list holds >= kTopPrune
      // distinct ids, so it is a real key (keys are > 0)
      const unsigned long long k =
          kth_best(w.cnt, [&](int j) { const int id = w.ids[j]; return rank_key(fix(xs[id - lo]), id); });
      w.prune(xs, lo, [k](int id, float x) { return rank_key(x, id) >= k; });
      // by key, exactly kTopReg ids stay (ties of logit included): publish
      // them (a warp's best keys only grow, entry by entry)
      volatile unsigned long long *mine = pub + (threadIdx.x >> 5) * kTopReg;
      if (lane < kTopReg) {
        const int id = w.ids[lane];
        const unsigned long long kk = rank_key(fix(xs[id - lo]), id);
        // the lane-th best of the kept ids: count those above it
        int above = 0;
        for (int j = 0; j < kTopReg; j++) {
          const int id2 = w.ids[j];
          above += rank_key(fix(xs[id2 - lo]), id2) > kk;
        }
        mine[above] = kk;
      }
      __syncwarp();
      // the block's floor from every warp's published keys (a key read
      // while another warp rewrites its row is either row's: a real key,
      // and the distinct-key count keeps a token from counting twice)
      const volatile unsigned long long *all = pub;
      const unsigned long long kb = kth_best((int)(blockDim.x >> 5) * kTopReg, [&](int j) { return all[j]; });
      const float b = ord2f((unsigned)((kb ? kb : k) >> 32));
      if (lane == 0) atomicMax(block_thr, f2ord(b));
      w.xfl = fmaxf(w.xfl, b);
    }
  }
};

// KList is the WarpList of the ids that may rank among a row's top k
// (k <= kKFast), made during the max pass, so that a top-k row (top-p,
// min-p and the race then work within those k) reads its logits once.
// A warp's prune keeps the ids whose logit reaches t, a value that k of
// them reach (klist_cut): k of the block's tokens are then >= t, so a
// smaller logit ranks below k others and cannot be in the top k (an equal
// one is listed: ties rank by id). t goes to the block's floor
// (block_thr, an atomicMax), which a warp's xfl follows whenever it
// lists ids; kf_scan starts it at a floor that k ids of a sample of the
// slice reach (block_kth). Until the
// first floor every id is listed, -Inf and NaN too (the reference ranks
// them as -Inf). A prune that leaves the list full (more than cap - 128
// ids reach t: ties) sets over, and the row takes the cut passes.
constexpr int kKFast = TK_SAMPLE_TOPK_LISTS_MAX;  // the largest top-k a row cuts from its lists
// kf_scan's merge gives each warp a slot of kKFast keys at the start of the
// race's buffers, before the lists
static_assert(kKFast * 8 <= kRaceWarpBytes, "a warp's merge slot must fit its race buffer");
constexpr int kKSlots = 16;  // list ids a lane holds in registers to select (cap <= 512)
constexpr int kKBits = 20;   // the floor's leading bits that klist_cut bisects
constexpr int kKSample = 4;  // groups of four a thread in the lists' samples (KList, TopList)

// ord_bisect returns the largest t with kKBits leading bits (in f2ord
// order) and zeros below such that count(t) >= k, where count(c, bit)
// says how many values reach c (bit: the bisection's step, for a caller
// that alternates buffers): a bisection over those bits from the top.
// Every value counted is at least -Inf's f2ord and k of them exist, so t
// is clamped there: the truncated bits may undershoot into the NaN codes
// below it, and ord2f(t) must stay a real floor. (klist_cut, block_kth.)
template <typename Count>
__device__ __forceinline__ unsigned ord_bisect(int k, Count count) {
  unsigned t = 0;
#pragma unroll 1
  for (int b = 31; b >= 32 - kKBits; b--) {
    const unsigned c = t | (1u << b);
    if (count(c, b) >= k) t = c;
  }
  return max(t, f2ord(-INFINITY));
}

// klist_cut prunes a KList's ids (cnt of them, at least k) to those whose
// logit reaches t, the largest value with kKBits leading bits (in f2ord
// order) and zeros below that k listed logits reach (ord_bisect, counting
// with one warp reduction a bit). t is within 2^-11 of the k-th largest
// listed logit, relatively, and below or at it. It returns the ids kept and t (as f2ord), and raises the block's floor to
// t. Not inlined: the scan's loop keeps its registers. Warp-uniform.
__device__ __noinline__ int2 klist_cut(int *ids, int cnt, const float *xs, int lo, int k,
                                       unsigned *block_thr) {
  const int lane = (int)(threadIdx.x & 31);
  unsigned v[kKSlots];
#pragma unroll
  for (int j = 0; j < kKSlots; j++) {
    const int e = j * 32 + lane;
    v[j] = e < cnt ? f2ord(fix(xs[ids[e] - lo])) : 0u;  // 0: below every f2ord
  }
  const unsigned t = ord_bisect(k, [&](unsigned c, int) {
    int n = 0;
#pragma unroll
    for (int j = 0; j < kKSlots; j++) n += v[j] >= c;
    return (int)__reduce_add_sync(0xffffffffu, (unsigned)n);
  });
  // keep the ids reaching t, in order (their logits from v)
  const unsigned below = (1u << lane) - 1;
  int out = 0;
#pragma unroll
  for (int j = 0; j < kKSlots; j++) {
    if (j * 32 >= cnt) break;  // warp-uniform
    const int e = j * 32 + lane;
    const bool keep = e < cnt && v[j] >= t;
    const int id = keep ? ids[e] : 0;
    const unsigned mk = __ballot_sync(0xffffffffu, keep);
    __syncwarp();  // every lane has read its entry before any is overwritten
    if (keep) ids[out + __popc(mk & below)] = id;
    out += __popc(mk);
  }
  __syncwarp();
  if (lane == 0) atomicMax(block_thr, t);
  return make_int2(out, (int)t);
}

struct KList {
  WarpList w;
  int k;
  bool over = false;
  unsigned *block_thr;  // f2ord of the block's floor (shared)

  __device__ __forceinline__ void cut(const float *xs, int lo) {
    const int2 r = klist_cut(w.ids, w.cnt, xs, lo, k, block_thr);
    w.cnt = r.x;
    w.xfl = fmaxf(w.xfl, ord2f((unsigned)r.y));
  }

  __device__ __forceinline__ void group(const float *xs, int lo) {
    if (over) {
      w.pend = 0;
      return;
    }
    if (!__ballot_sync(0xffffffffu, w.pend != 0)) return;
    w.append();
    w.xfl = fmaxf(w.xfl, ord2f(*(volatile unsigned *)block_thr));
    if (w.full()) {
      cut(xs, lo);
      over = w.full();
    }
  }
};

// Cluster primitives: C blocks exchange through distributed shared memory;
// with C == 1 they reduce to the block itself.
template <int C>
struct Cluster {
  __device__ static int rank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (C > 1) return (int)cg::this_cluster().block_rank();
#endif
    return 0;
  }
  __device__ static void sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (C > 1) {
      cg::this_cluster().sync();
      return;
    }
#endif
    __syncthreads();
  }
  template <typename T>
  __device__ static T *peer(T *p, int r) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (C > 1) return cg::this_cluster().map_shared_rank(p, r);
#endif
    return p;
  }
};

// Xchg is what a block publishes to its cluster; each field has one use
// per phase, and a cluster barrier separates its writes from the peers'
// reads (the next write of a field comes after a later barrier that every
// peer passes only once done reading it).
struct Xchg {
  float m, s;  // slice max and sum of exp(l - m) (logprobs)
  int best;    // slice argmax
  unsigned long long rtot;  // level-1 bucket range total
  int fb;                   // level-1 cut bucket found in this block's range, or -1
  unsigned long long facc;  // mass/count above it
  unsigned long long h2[kB2];
  int cnt;                      // exact-q members in this slice
  unsigned long long bis[2];    // bisection counts (alternating)
  unsigned long long kmin, kmax;
};

struct Shared {
  Xchg x;
  // what thread 0 read from the cluster at an exchange, for the block
  int offs[kMaxCluster + 1];
  int g_total, g_fits, i_bstar;
  unsigned long long u_lo, u_hi, u_above, u_total, u_acca, u_all[2];
  unsigned long long h2m[kB2];
  float f_max, f_logz;
  int i_best;
  // written by peers into block 0: each block's race winner and top-n keys
  unsigned long long race_in[kMaxCluster];
  int top_cnt[kMaxCluster];
  unsigned long long top_in[kMaxCluster * TK_SAMPLE_MAX_TOP];
  unsigned long long red_u[kMaxNW];
  float red_m[kMaxNW];
  float red_s[kMaxNW];
  int red_i[kMaxNW];
  float2 logt[kLogSize];  // engine/sample's logarithm table (r_j, t_j)
  unsigned race_thr;      // Race::block_thr
  unsigned mp_max;        // MinpList::block_max
  unsigned top_thr;       // f2ord of the block's floor for top logprobs (TopList::block_thr; tg)
  int mp_over;            // a warp's MinpList overflowed: the race reads the row
  unsigned long long top_mine[kTopReg];  // this block's top-n keys from the max pass
  unsigned long long top_pub[kMaxNW * kTopReg];  // TopList::pub
  int top_mine_cnt;
  int i0;
  unsigned long long u0;
  int blist_cnt;  // cut's list of the cut bucket's members (may exceed its room)
  // a top-p row's best race keys from its max pass (tp_scan, race rank
  // keys, descending, 0: none), the bounds of the mass ranking before each
  // one's token ([kTPM]: the total) and their states (tp_finish)
  unsigned long long tp_key[8], tp_lo[8], tp_hi[8], tp_win;
  int tp_st[8];
  int tp_qs, tp_novf;  // tp_scan's window top and its list's length
  int tp_chk;          // the histogram's counts less what tp_scan tallied (0 unless one overflowed)
  unsigned tp_smax;    // f2ord of the sample's maximum
  float tp_x[8];       // tp_finish: the logits of tp_key's tokens
};

// SharedKF is Shared with the top-k lists' fields, for the kernel built
// with them (KF); the other kernel keeps Shared's layout and size.
struct SharedKF : Shared {
  unsigned k_thr;  // KList::block_thr
  int k_fast;      // the row's top k comes from the max pass's lists (KList)
  int k_cnt;       // keys this block's lists gathered
  int kover;       // kf_scan: 1 if this block's lists overflowed, 0 if not; 2: not such a row
  int k_len[kMaxNW];  // kf_scan's merge: keys in each warp's slot
};

// The launch reserves 8,192 bytes for static shared memory (Shared, or
// SharedKF in the kernel with the top-k lists), and
// two 512-thread blocks an SM must fit with sm_90's 1 KB a block reserved.
static_assert(sizeof(SharedKF) <= 7680, "SharedKF outgrew the room the launch leaves for it");

// hist_add adds v to a 64-bit histogram entry with 32-bit atomics (a
// shared-memory 64-bit atomic add is a compare-and-swap loop on sm_90):
// the low word takes v's low 32 bits, and the thread whose add wraps it
// carries into the high word, so the entry is always the exact sum.
__device__ __forceinline__ void hist_add(unsigned long long *e, unsigned long long v) {
  unsigned *h = reinterpret_cast<unsigned *>(e);
  const unsigned lo = (unsigned)v;
  const unsigned old = atomicAdd(h, lo);
  const unsigned hi = (unsigned)(v >> 32) + (old + lo < old ? 1u : 0u);
  if (hi) atomicAdd(h + 1, hi);
}

__device__ __forceinline__ int nwarps() { return (int)(blockDim.x >> 5); }

__device__ __forceinline__ unsigned long long warp_sum_u(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide reductions; every thread gets the result (fixed order: the
// same total in every block and every run).
__device__ unsigned long long block_sum_u(unsigned long long v, Shared &sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  v = warp_sum_u(v);
  __syncthreads();
  if (lane == 0) sh.red_u[w] = v;
  __syncthreads();
  unsigned long long t = 0;
  for (int i = 0; i < nwarps(); i++) t += sh.red_u[i];
  return t;
}

__device__ unsigned long long block_max_u(unsigned long long v, Shared &sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    unsigned long long t = __shfl_xor_sync(0xffffffffu, v, o);
    v = t > v ? t : v;
  }
  __syncthreads();
  if (lane == 0) sh.red_u[w] = v;
  __syncthreads();
  unsigned long long m = sh.red_u[0];
  for (int i = 1; i < nwarps(); i++) m = sh.red_u[i] > m ? sh.red_u[i] : m;
  return m;
}

__device__ unsigned long long block_min_u(unsigned long long v, Shared &sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    unsigned long long t = __shfl_xor_sync(0xffffffffu, v, o);
    v = t < v ? t : v;
  }
  __syncthreads();
  if (lane == 0) sh.red_u[w] = v;
  __syncthreads();
  unsigned long long m = sh.red_u[0];
  for (int i = 1; i < nwarps(); i++) m = sh.red_u[i] < m ? sh.red_u[i] : m;
  return m;
}

// bitonic_desc sorts n keys (padded with 0 to a power of two) descending.
__device__ void bitonic_desc(unsigned long long *s, int n) {
  int p = 1;
  while (p < n) p <<= 1;
  for (int i = n + threadIdx.x; i < p; i += (int)blockDim.x) s[i] = 0;
  __syncthreads();
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += (int)blockDim.x) {
        int ij = i ^ j;
        if (ij > i) {
          unsigned long long a = s[i], c = s[ij];
          bool desc = (i & k) == 0;
          if (desc ? a < c : a > c) {
            s[i] = c;
            s[ij] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Slice is this block's share of a row: n logits of ids [lo, lo + n) at
// xs (shared memory, or the row itself in global memory when the slice is
// too large to stage), plus the per-block buffers.
struct Slice {
  const float *xs;
  int n, lo;
  bool vec;  // xs is 16-byte aligned: float4 loads
  const unsigned *tab;
  unsigned long long *hist1, *own, *local, *gbuf;
  float4 *ring;  // for_each_wq's copy ring when the slice is read in place (else null)
};

// The ring that streams an unstaged slice through shared memory: kRingDepth
// stages in flight a thread, kRingU float4 a thread a stage, each thread
// copying and reading back only its own float4s (no block barriers).
constexpr int kRingU = 2;
constexpr int kRingDepth = 2;
constexpr int kRingSlots = kRingDepth + 1;
__host__ __device__ constexpr size_t ring_bytes(int threads) {
  return (size_t)kRingSlots * kRingU * threads * 16;
}

// for_each calls f(id, logit) for every logit of the slice, each thread a
// strided share.
template <typename F>
__device__ __forceinline__ void for_each(const Slice &sl, F f) {
  int j0 = 0;
  if (sl.vec) {
    const float4 *x4 = reinterpret_cast<const float4 *>(sl.xs);
    const int n4 = sl.n >> 2;
#pragma unroll 2
    for (int j = threadIdx.x; j < n4; j += (int)blockDim.x) {
      const float4 v = x4[j];
      const int i = sl.lo + 4 * j;
      f(i, fix(v.x));
      f(i + 1, fix(v.y));
      f(i + 2, fix(v.z));
      f(i + 3, fix(v.w));
    }
    j0 = 4 * n4;
  }
  for (int j = j0 + threadIdx.x; j < sl.n; j += (int)blockDim.x) f(sl.lo + j, fix(sl.xs[j]));
}

// for_each_wq is for_each with warp-uniform trip counts (ids past the
// slice come as -Inf), for loops that vote across the warp: before the
// f calls of a group of four ids i0 .. i0 + 3 it calls pre(i0, v, valid)
// with their raw logits and a mask of the ids that are the slice's (bit
// e for id i0 + e; in the unaligned tail a group is one id, the rest of v
// -Inf), and after them after().
template <typename P, typename F, typename G>
__device__ __forceinline__ void for_each_wq(const Slice &sl, P pre, F f, G after) {
  const int lane = threadIdx.x & 31, wbase = (int)threadIdx.x - lane, T = (int)blockDim.x;
  const int tid = (int)threadIdx.x;
  int j0 = 0;
  auto quad = [&](int jb, float4 v, unsigned valid) {  // ids 4*(jb + lane) .. +3 of the slice
    const int i = sl.lo + 4 * (jb + lane);
    pre(i, v, valid);
    f(i, fix(v.x));
    f(i + 1, fix(v.y));
    f(i + 2, fix(v.z));
    f(i + 3, fix(v.w));
    after();
  };
  const float4 ninf = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
  const int n4 = sl.vec ? sl.n >> 2 : 0;
  if (n4 && sl.ring) {
    // global slice: asynchronous copies kRingDepth stages ahead, so the
    // loads stay in flight while the thread computes
    // (slots and offsets advance by steps, no division by kRingSlots)
    const float4 *x4 = reinterpret_cast<const float4 *>(sl.xs);
    const int per = kRingU * T;
    const unsigned r0 = (unsigned)__cvta_generic_to_shared(sl.ring + tid), sbytes = 16u * (unsigned)per;
    int wj = tid;      // the next stage to issue: its first float4 of this thread
    unsigned wr = r0;  // and where it goes
    // (ids past the slice get -Inf, so that reads need no test)
    auto issue = [&]() {
      if (wj + (kRingU - 1) * T < n4) {  // the whole stage in the slice: no test a copy
#pragma unroll
        for (int u = 0; u < kRingU; u++)
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(wr + 16u * (unsigned)(u * T)),
                       "l"(x4 + wj + u * T));
      } else {
#pragma unroll
        for (int u = 0; u < kRingU; u++) {
          if (wj + u * T < n4)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(wr + 16u * (unsigned)(u * T)),
                         "l"(x4 + wj + u * T));
          else
            asm volatile("st.shared.v4.f32 [%0], {%1, %1, %1, %1};\n" ::"r"(wr + 16u * (unsigned)(u * T)),
                         "f"(-INFINITY) : "memory");
        }
      }
      asm volatile("cp.async.commit_group;\n" ::: "memory");
      wj += per;
      wr = wr == r0 + (kRingSlots - 1) * sbytes ? r0 : wr + sbytes;
    };
#pragma unroll
    for (int st = 0; st < kRingDepth; st++) issue();
    const float4 *rd = sl.ring + tid;  // the slot read this step
    for (int jst = wbase; jst < n4; jst += per) {
      asm volatile("cp.async.wait_group %0;\n" ::"n"(kRingDepth - 1) : "memory");
      issue();  // into the slot read last step
#pragma unroll 1
      for (int u = 0; u < kRingU; u++) {
        const int jb = jst + u * T;
        if (jb >= n4) break;  // warp-uniform
        quad(jb, rd[u * T], jb + lane < n4 ? 0xFu : 0u);
      }
      rd = rd == sl.ring + tid + (kRingSlots - 1) * per ? sl.ring + tid : rd + per;
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    j0 = 4 * n4;
  } else if (n4) {
    const float4 *x4 = reinterpret_cast<const float4 *>(sl.xs);
#pragma unroll 2
    for (int jb = wbase; jb < n4; jb += T) {
      const bool in = jb + lane < n4;
      quad(jb, in ? x4[jb + lane] : ninf, in ? 0xFu : 0u);
    }
    j0 = 4 * n4;
  }
  for (int jb = j0 + wbase; jb < sl.n; jb += T) {
    const int j = jb + lane;
    const float x = j < sl.n ? sl.xs[j] : -INFINITY;
    pre(sl.lo + j, make_float4(x, -INFINITY, -INFINITY, -INFINITY), j < sl.n ? 1u : 0u);
    f(sl.lo + j, fix(x));
    after();
  }
}

// quad_max is the largest of a group of four raw logits, fixed (NaN
// ranks as -Inf).
__device__ __forceinline__ float quad_max(float4 v) {
  return fix(fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));  // a NaN is ignored
}

// fix4 is fix on each of a group of four.
__device__ __forceinline__ float4 fix4(float4 v) { return make_float4(fix(v.x), fix(v.y), fix(v.z), fix(v.w)); }

// quad_ge is a group of four's bits of x >= f (bit e for element e; a NaN
// element's bit is 0): the warp lists' scan test.
__device__ __forceinline__ unsigned quad_ge(float4 v, float f) {
  return (unsigned)(v.x >= f) | (unsigned)(v.y >= f) << 1 | (unsigned)(v.z >= f) << 2 |
         (unsigned)(v.w >= f) << 3;
}

// quad_argmax folds a group of four ids i0 .. i0 + 3 (raw logits v, g =
// quad_max(v)) into a thread's running argmax (m, bi): the first of its
// largest logits when that is larger than m (a thread's ids rise, so ties
// keep the first). (A branch-free form that kept the group's first id and
// found the id after the scan with one more read made greedy rows ~5%
// slower at 256 rows, H100, session 10.)
__device__ __forceinline__ void quad_argmax(int i0, float4 v, float g, float &m, int &bi) {
  if (g > m) {
    m = g;
    bi = i0 + (fix(v.x) == g ? 0 : fix(v.y) == g ? 1 : fix(v.z) == g ? 2 : 3);
  }
}

// ArgMax is a thread's running argmax over its ids.
struct ArgMax {
  float m;
  int i;
};

// sample_max is this thread's largest logit (NaN as -Inf) of its G groups
// of four in the lists' samples, xs4[threadIdx.x + j * blockDim.x], j < G
// (block_kth, warp_top_floor).
template <int G>
__device__ __forceinline__ float sample_max(const float4 *xs4) {
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < G; j++) m = fmaxf(m, quad_max(xs4[threadIdx.x + j * blockDim.x]));
  return m;
}

// block_kth returns a floor that k of the block's blockDim.x * 4 * G
// logits at xs4[threadIdx.x + j * blockDim.x], j < G (every thread's G
// groups of four) reach: the k-th largest (in f2ord order, its kKBits
// leading bits, as klist_cut) of the threads' maxima over their 4 * G
// (k <= blockDim.x), each a distinct id. It is at or below the k-th
// largest of all of them, and close: a thread rarely holds two of the
// largest k. ord_bisect counts with one vote a warp and one block barrier
// a bit (the warps' counts alternate between two shared arrays, so one
// barrier a bit suffices), then one warp reduction of the counts.
// (Counting all 4 * G logits a thread, and summing the warps' counts in
// every thread, took 16% of a top-k row's instructions at 256 rows.)
// Block-uniform.
template <int G, typename Sh>
__device__ __noinline__ unsigned block_kth(const float4 *xs4, int k, Sh &sh) {
  const int lane = (int)(threadIdx.x & 31), wid = (int)(threadIdx.x >> 5);
  const unsigned o = f2ord(sample_max<G>(xs4));
  const unsigned t = ord_bisect(k, [&](unsigned cnd, int bit) {
    int *cnt = (bit & 1) ? reinterpret_cast<int *>(sh.red_m) : sh.red_i;
    const int n = __popc(__ballot_sync(0xffffffffu, o >= cnd));
    if (lane == 0) cnt[wid] = n;
    __syncthreads();
    return (int)__reduce_add_sync(0xffffffffu, lane < nwarps() ? (unsigned)cnt[lane] : 0u);
  });
  __syncthreads();  // every count read before the arrays' next use
  return t;
}

// warp_sort64 sorts a warp's 64 keys descending (key lane + 32 * e in
// v[e]): a bitonic network in registers, no shared memory.
__device__ __forceinline__ void warp_sort64(unsigned long long (&v)[2]) {
  const int lane = (int)(threadIdx.x & 31);
#pragma unroll
  for (int k = 2; k <= 64; k <<= 1) {
#pragma unroll
    for (int j = k >> 1; j > 0; j >>= 1) {
      if (j == 32) {  // pairs (lane, lane + 32), in a descending run
        const unsigned long long hi = v[0] > v[1] ? v[0] : v[1], lo = v[0] > v[1] ? v[1] : v[0];
        v[0] = hi;
        v[1] = lo;
      } else {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const unsigned long long o = __shfl_xor_sync(0xffffffffu, v[e], j);
          // the pair's lower index keeps the larger key in a descending
          // run ((i & k) == 0 for index i), the smaller in an ascending one
          const bool take_max = (((lane + 32 * e) & k) == 0) != ((lane & j) != 0);
          v[e] = take_max ? (o > v[e] ? o : v[e]) : (o < v[e] ? o : v[e]);
        }
      }
    }
  }
}

// keys_above counts the keys of s (n of them, sorted descending,
// distinct from x) above x: a binary search. 0 for x == 0 (no key).
__device__ __forceinline__ int keys_above(const unsigned long long *s, int n, unsigned long long x) {
  if (x == 0) return 0;
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (s[mid] > x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// warp_top_floor returns, as f2ord, the k-th largest distinct maximum
// among the warp's lanes' maxima of their G groups of four at
// xs4[threadIdx.x + j * blockDim.x] (NaN as -Inf): at least k of those
// ids reach it (-Inf's f2ord when fewer than k distinct maxima exist).
// k rounds of a warp max; warp-uniform.
template <int G>
__device__ __forceinline__ unsigned warp_top_floor(const float4 *xs4, int k) {
  const unsigned o = f2ord(sample_max<G>(xs4));
  unsigned t = ~0u;
  for (int r = 0; r < k && t; r++) t = __reduce_max_sync(0xffffffffu, o < t ? o : 0u);
  return max(t, f2ord(-INFINITY));
}

// Top-p in one read (TK_SAMPLE_TOPP_FAST, one block a row: 1024 threads
// with the copy ring while the rows fit the SMs, else 512 threads without
// it, two rows an SM; 512 wherever the batch also has rows that cut their
// top k from lists, which 1024-thread blocks have no room for). The
// race winner over a row's survivors is the first of the row's race keys,
// in key order, whose token survives: so the max pass keeps the row's kTPM
// best race keys over every finite token (RaceM), and, since a token's
// weight depends only on its quantized exponent q = q_of(x) - q_of(max)
// and q_of(x) needs no maximum, it also counts the tokens of each q_of
// value in a window of kQWin values (every value whose mass is not 0) in
// shared memory (tp_scan). With the maximum known, the counts weighed by
// their exact fixed-point masses give the total and, for each of the kTPM
// tokens, the mass of the tokens of larger q; those of its own q may rank
// before or after it, which bounds the mass ranking before it (tp_finish).
// A token survives when that mass has not reached top_p of the total (the
// cut's rule, the same exact sums); the first survivor in key order wins.
// The row takes the cut passes when a bound does not decide (a token whose
// own q holds the cut), when none of the kTPM survives (at most about
// (1 - top_p)^kTPM of rows: each is a draw without replacement by weight,
// outside the nucleus with probability at most 1 - top_p), and where the
// window cannot be placed: the scan places it below the maximum of a
// sample of the row (128 ids a warp, spread), lists the logits of the
// tokens above it (kTPOvf kept), and the row falls back when the
// list overflows, when a count passes 65,535, or when the maximum's q_of
// is 2^21 or more in magnitude (tiny temperatures). Session 11's form
// read the row twice: top-p 0.9 at 256 rows 168.3 us against 103.0 for
// this one, at 128 rows 105.1 against 78.5 (H100, queued, same call,
// bench/cuda/results/2026-11-27-h100-s18/call5). Rows with min-p
// take the cut passes from the start (min-p may drop all kTPM while the
// nucleus keeps its mass: a review's crafted rows fell back 91% of the
// time); so do rows with top_p below TK_SAMPLE_TOPP_FAST_MIN (0.8) unless
// TK_SAMPLE_TOPP_FAST_ALL: for them a fallback is frequent.
constexpr int kTPM = 7;
constexpr int kQWin = 1 << 15;  // q_of values a row's histogram counts: masses of q <= -32768 are 0
constexpr int kTPOvf = 1024;    // tokens above the sample's maximum a block lists (their logits)

// tp_smem is the top-p kernel's dynamic shared memory (T threads): the
// exponent table, the copy ring, the race's buffers (nwarps *
// kRaceWarpBytes), the histogram of kQWin 16-bit counts (over the cut
// passes' regions, which a fallback uses once the counts are weighed), the
// warps' pools of race keys (64 each) and the list of the logits above the
// window.
__host__ __device__ constexpr size_t tp_smem(int T, bool ring = true) {
  return (size_t)kQSize * 4 + (ring ? ring_bytes(T) : 0) + (size_t)(T / 32) * kRaceWarpBytes + (size_t)kQWin * 2 +
         (size_t)(T / 32) * 64 * 8 + (size_t)kTPOvf * 4;
}

// RaceM is the race of tp_scan: every token whose key reaches thr goes
// to its warp's pool (rank keys of (race key, id), 64 slots), which keeps
// its kTPM best once it holds more than 32; thr is then the warp's
// kTPM-th best key (kTPM of the block's tokens reach it, so a smaller key
// is not among the block's kTPM best; an equal one may be, by id) and
// goes to the block's bound (block_thr), which every warp follows.
struct RaceM : Race {
  unsigned long long *pool;  // this warp's 64 slots
  int pcnt = 0;              // warp-uniform

  // compact sorts the pool and keeps its kTPM best (0-padded to 32 slots).
  __device__ void compact() {
    const int lane = threadIdx.x & 31;
    __syncwarp();
    unsigned long long v[2] = {lane < pcnt ? pool[lane] : 0ull, lane + 32 < pcnt ? pool[lane + 32] : 0ull};
    warp_sort64(v);
    __syncwarp();  // every lane has read its slots
    pool[lane] = lane < kTPM ? v[0] : 0ull;
    pcnt = min(pcnt, kTPM);
    const unsigned long long kth = __shfl_sync(0xffffffffu, v[0], kTPM - 1);
    if (kth) {
      const float t = ord2f((unsigned)(kth >> 32));
      if (t > thr) set_thr(t);
      if (lane == 0) atomicMax(block_thr, (unsigned)(kth >> 32));
    }
    __syncwarp();
  }

  // drain_q is Race::drain for the pool (last also sorts it), with one
  // buffer entry a lane instead of one a candidate (session 17 replaced
  // that form): a lane with noted candidates queues (pbase << 4) | pend,
  // with one vote where queue_group takes four and their offsets (that
  // queueing was ~20% of tp_scan's instructions, H100, session 17), and
  // flush_e keys an entry's candidates. At most 32 entries join the 31
  // left, so one flush empties the buffer below 32. Warp-uniform.
  __device__ __forceinline__ void drain_q(bool last = false) {
    const unsigned mk = __ballot_sync(0xffffffffu, pend != 0);
    if (mk) {
      const float b = ord2f(*(volatile unsigned *)block_thr);
      if (b > thr) set_thr(b);
      if (pend) bid[cnt + __popc(mk & ((1u << (threadIdx.x & 31)) - 1))] = (pbase << 4) | (int)pend;
      cnt += __popc(mk);
      pend = 0;
      if (cnt >= 32) flush_e(32);
    }
    if (last) {
      if (cnt > 0) flush_e(cnt);
      compact();
    }
  }

  // flush_e keys the candidates of the last take entries (a lane an
  // entry, one candidate a lane a round), pooling those whose key reaches
  // thr; a pool of more than 32 is cut to its best kTPM (compact).
  __device__ void flush_e(int take) {
    const int lane = threadIdx.x & 31;
    __syncwarp();
    unsigned bits = 0;
    int base = 0;
    if (lane < take) {
      const unsigned e = (unsigned)bid[cnt - take + lane];
      bits = e & 15u;
      base = (int)(e >> 4);
    }
    cnt -= take;
    while (__any_sync(0xffffffffu, bits != 0)) {
      unsigned long long key = 0;
      if (bits) {
        const int i = base + __ffs(bits) - 1;
        bits &= bits - 1;
        const float x = fix(xs[i - lo]);
        const unsigned h = noise_hash(nk, i);
        const float y = __fmul_rn(x, ws);
        if (x > -INFINITY && !(__fadd_rn(y, noise_bound(h)) < thr)) {  // -Inf, NaN: as Race::flush
          const float k = __fadd_rn(__fadd_rn(y, noise_of(h, lt)), 0.f);  // -0 as +0
          if (!(k < thr)) key = rank_key(k, i);
        }
      }
      const unsigned mk = __ballot_sync(0xffffffffu, key != 0);
      if (key) pool[pcnt + __popc(mk & ((1u << lane) - 1))] = key;
      pcnt += __popc(mk);
      if (pcnt > 32) compact();
    }
  }
};

// The histogram of tp_scan: kQWin 16-bit counts, two a word (the low half
// the even slot). A count that passes 65,535 carries into its neighbour or
// out of the word; tp_finish finds that from the sum of the counts.
__device__ __forceinline__ void tp_add(unsigned *qh, unsigned s) { atomicAdd(qh + (s >> 1), 1u << ((s & 1u) << 4)); }
__device__ __forceinline__ unsigned tp_get(const unsigned *qh, unsigned s) {
  return reinterpret_cast<const unsigned short *>(qh)[s];
}

// q_round is q_of(y / ws) for a product y within +-2^22, as an add (the
// bits of y + 1.5 * 2^23 count the integers), biased by 0x4B400000.
__device__ __forceinline__ int q_round(float y) { return __float_as_int(__fadd_rn(y, 12582912.f)); }

// tp_scan is the max pass of a top-p row (C = 1): each thread's maximum
// and the first group of four holding it (its first id; tp_resolve finds
// the argmax where a row needs it);
// the block's kTPM best race rank keys over its finite tokens into
// sh.tp_key (descending, 0-padded), the warps' pools at pools + wid * 64;
// and the counts of the tokens of each q_of value in [qs - 32767, qs] at
// slot q & (kQWin - 1) of qh (as tp_add; sh.tp_chk gets minus how many),
// qs the q_of of a sample's maximum (sh.tp_qs), the logits of the tokens
// above qs listed at ovf (sh.tp_novf of them, kTPOvf kept; the tokens are
// counted at qs as well). Not inlined: the other rows' scans keep their
// registers. Block-uniform. Cheap: the race's notes by Race::add4v and
// the groups' raw maxima; the kernel with the top-k lists takes add4 and
// quad_max, since there the cheap form spilled in the scan's loop (two
// STL.64 a group: the mixed top-p / top-k batch took 133 us at 256 rows
// against 102, H100, session 18).
template <bool Cheap>
__device__ __noinline__ ArgMax tp_scan(const Slice sl, unsigned long long nk, float ws, int *bid,
                                       unsigned long long *pools, unsigned *qh, int *ovf, Shared &sh) {
  const int tid = (int)threadIdx.x, lane = tid & 31, wid = tid >> 5, T = (int)blockDim.x;
  // a global slice read in place: each thread's next group is loaded
  // before it works on the current one (a load issued just before its use
  // left ~30% of the scan's stall samples on it, H100, session 17); the
  // first is loaded now, while the set-up runs
  const bool pf = sl.vec && !sl.ring;
  const float4 *x4 = reinterpret_cast<const float4 *>(sl.xs);
  const int n4 = sl.n >> 2;
  const float4 ninf = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
  auto ld = [&](int j) { return j < n4 ? __ldcg(x4 + j) : ninf; };
  float4 nx = pf ? ld(wid * 32 + lane) : ninf;
  // the histogram zeroed; the sample's maximum (NaN drops out of fmaxf)
  for (int j = tid; j < kQWin / 8; j += T) reinterpret_cast<uint4 *>(qh)[j] = make_uint4(0u, 0u, 0u, 0u);
  if (tid == 0) {
    sh.tp_smax = f2ord(-INFINITY);
    sh.tp_novf = 0;
    sh.tp_chk = 0;
  }
  // the sample: its maximum, and its tokens' race rank keys, whose kTPM-th
  // best starts the race's bound (kTPM tokens reach it; without it the
  // warps' pools took every token until their first compaction, and the
  // race cost the scan ~50k cycles a row, H100)
  float smx = -INFINITY;
  constexpr int kRuns = 4;  // runs a warp: the ids above the sample's maximum (listed) number ~V / (kRuns * T)
  unsigned long long sk[kRuns];
  const int runs = min(kRuns * nwarps(), sl.n / 32), stride = runs > 0 ? sl.n / runs : 0;
#pragma unroll
  for (int h = 0; h < kRuns; h++) {  // runs wid, wid + nwarps, ...
    sk[h] = 0ull;
    const int r = wid + h * nwarps();
    const int i = r * stride + lane;  // distinct ids: stride >= 32
    if (r < runs) {
      const float x = fix(sl.xs[i]);
      smx = fmaxf(smx, x);
      if (x > -INFINITY) {
        const int id = sl.lo + i;
        sk[h] = rank_key(__fadd_rn(__fadd_rn(__fmul_rn(x, ws), noise_of(noise_hash(nk, id), sh.logt)), 0.f), id);
      }
    }
  }
  // each warp's best sample key: the kTPM-th best of those is a bound
  // that kTPM distinct tokens reach
  unsigned long long wk = 0ull;
#pragma unroll
  for (int h = 0; h < kRuns; h++) wk = sk[h] > wk ? sk[h] : wk;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long t = __shfl_xor_sync(0xffffffffu, wk, o);
    wk = t > wk ? t : wk;
    smx = fmaxf(smx, __shfl_xor_sync(0xffffffffu, smx, o));
  }
  if (lane == 0) pools[wid * 64] = wk;
  prof(24);
  __syncthreads();  // tp_smax's and tp_novf's start, the sample's keys
  prof(25);
  if (lane == 0) atomicMax(&sh.tp_smax, f2ord(smx));
  if (wid == 0 && lane < nwarps()) {  // the lane whose warp's key ranks kTPM-th (keys are distinct or 0)
    const unsigned long long k = pools[lane * 64];
    int r = 0;
    for (int j = 0; j < nwarps(); j++) r += pools[j * 64] > k;
    if (k && r == kTPM - 1) atomicMax(&sh.race_thr, (unsigned)(k >> 32));
  }
  prof(26);
  __syncthreads();  // the histogram zeroed, the sample's maximum, the race's bound
  prof(27);
  // the window: q_of in [qs - 32767, qs] counts where it lands (qs
  // within +-2^21, so that every product above ylo rounds by an add);
  // above it the list; a sample maximum below -2^21 (or -Inf) lists every
  // finite token; one above 2^21 counts nothing (the row falls back).
  // ylo is the least product that rounds into the window, yov the least
  // that rounds above it (ties round to even); a product above the window
  // counts at qs (the clamp yhi), and tp_finish takes the listed tokens'
  // count off there.
  const float ys = __fmul_rn(ord2f(sh.tp_smax), ws);
  float ylo, yhi, yov;
  if (ys > -0x1p21f && ys < 0x1p21f) {
    const int qs = q_round(ys) - 0x4B400000;
    const int qb = qs - (kQWin - 1);
    ylo = (float)qb - 0.5f;  // exact, as the bounds below
    if (qb & 1) ylo = nextafterf(ylo, INFINITY);  // the tie rounds to qb - 1
    yhi = (float)qs;
    yov = (float)qs + 0.5f;
    if (!(qs & 1)) yov = nextafterf(yov, INFINITY);  // the tie rounds to qs
    if (tid == 0) sh.tp_qs = qs;
  } else {
    ylo = INFINITY;  // no counts (a +Inf product still passes y >= ylo and counts at slot 0: such
                     // a row returns kPosInf, or tp_finish falls back before reading a count)
    yhi = 0.f;
    yov = ys > 0.f ? INFINITY : -FLT_MAX;  // every finite token listed, or none
    if (tid == 0) sh.tp_qs = ys > 0.f ? INT_MAX : INT_MIN;
  }
  const unsigned qh_s = (unsigned)__cvta_generic_to_shared(qh);
  int tallied = 0;
  // tally counts a token of product y in the window (16-bit counts, two a
  // word: the low half the even slot; slot = q & (kQWin - 1), and the
  // bias of q_round is a multiple of kQWin). No branch: the add is
  // predicated.
  auto tally = [&](float y) {
    const unsigned b = (unsigned)q_round(fminf(y, yhi));
    const unsigned a = qh_s + ((b << 1) & (unsigned)(kQWin * 2 - 4));
    const unsigned inc = (b & 1u) * 0xFFFFu + 1u;
    // y >= ylo (NaN and -Inf fail): the add, and one more tallied
    asm volatile(
        "{\n .reg .pred p;\n setp.ge.f32 p, %3, %4;\n @p red.shared.add.u32 [%1], %2;\n @p add.s32 %0, %0, 1;\n}\n"
        : "+r"(tallied)
        : "r"(a), "r"(inc), "f"(y), "f"(ylo)
        : "memory");
  };
  float m = -INFINITY;
  int bg = INT_MAX;  // the first group holding this thread's maximum (its first id)
  RaceM race;
  race.ws = ws;
  race.nws = __fmul_rn(-ws, 1.f / 1024.f);
  race.init_t32();
  race.nk = nk;
  race.lt = sh.logt;
  race.xs = sl.xs;
  race.lo = sl.lo;
  race.bid = bid;
  race.block_thr = &sh.race_thr;
  race.pool = pools + wid * 64;
  if (const float t = ord2f(sh.race_thr); t > -INFINITY) race.set_thr(t);
  const float nws32 = __fmul_rn(race.nws, 1.f / 32.f);
  prof(30);
  // a group of four ids i0 .. i0 + 3 (raw logits v; past the slice -Inf;
  // bit e of valid for an id i0 + e of the slice). g is the group's
  // maximum, raw when Cheap (fix is applied to m after the scan: a NaN
  // drops out of fmaxf, and -0 compares equal to +0)
  auto group = [&](int i0, float4 v, unsigned valid) {
    const float g = Cheap ? fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)) : quad_max(v);
    if (g > m) {  // a thread's ids rise: ties keep the first group
      m = g;
      bg = i0;
    }
    if constexpr (Cheap)
      race.add4v(i0, v, valid, nws32);
    else
      race.add4(i0, v, -FLT_MAX);
    tally(__fmul_rn(v.x, ws));
    tally(__fmul_rn(v.y, ws));
    tally(__fmul_rn(v.z, ws));
    tally(__fmul_rn(v.w, ws));
    // the tokens above the window, listed (rare past a sample's maximum)
    if (__any_sync(0xffffffffu, __fmul_rn(g, ws) >= yov)) {
      const float xv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 4; e++)
        if (__fmul_rn(fix(xv[e]), ws) >= yov) {
          const int k = atomicAdd(&sh.tp_novf, 1);
          if (k < kTPOvf) ovf[k] = __float_as_int(fix(xv[e]));  // its logit (tp_finish counts it)
        }
    }
    race.drain_q();
  };
  if (pf) {
#pragma unroll 1
    for (int jb = wid * 32; jb < n4; jb += T) {
      const float4 v = nx;
      nx = ld(jb + T + lane);
      group(sl.lo + 4 * (jb + lane), v, jb + lane < n4 ? 0xFu : 0u);
    }
    for (int jb = 4 * n4 + wid * 32; jb < sl.n; jb += T) {  // the unaligned tail: one id a group
      const int j = jb + lane;
      group(sl.lo + j, make_float4(j < sl.n ? sl.xs[j] : -INFINITY, -INFINITY, -INFINITY, -INFINITY),
            j < sl.n ? 1u : 0u);
    }
  } else {
    for_each_wq(sl, [&](int i0, float4 v, unsigned valid) { group(i0, v, valid); }, [](int, float) {}, [] {});
  }
  race.drain_q(true);
  tallied = (int)__reduce_add_sync(0xffffffffu, (unsigned)tallied);
  if (lane == 0) atomicSub(&sh.tp_chk, tallied);
  prof(29);
  if (tid < kTPM) sh.tp_key[tid] = 0;
  __syncthreads();
  // the block's kTPM best of the warps' kTPM (keys are distinct: distinct
  // ids; 0 where they run out): each key's rank counted over all of them
  if (tid < nwarps() * kTPM) {
    const unsigned long long k = pools[(tid / kTPM) * 64 + tid % kTPM];
    if (k) {
      int r = 0;
      for (int j = 0; j < nwarps() * kTPM; j++) r += pools[(j / kTPM) * 64 + j % kTPM] > k;
      if (r < kTPM) sh.tp_key[r] = k;
    }
  }
  __syncthreads();
  return ArgMax{fix(m), bg};
}

// tp_resolve is the first id of the group at gb (tp_scan's maximum's
// group) whose logit is maxl, the maximum: the row's argmax, for the rare
// rows that need it (a +Inf maximum, the cut passes).
__device__ int tp_resolve(const float *row, int V, int gb, float maxl) {
  for (int e = 0; e < 4 && gb + e < V; e++)
    if (fix(row[gb + e]) == maxl) return gb + e;
  return gb;
}

// tp_mass is the fixed-point mass of the tokens of quantized exponent d
// (-32767 <= d <= 0): count c times mass_of(weight).
__device__ __forceinline__ unsigned long long tp_mass(unsigned c, int d, const unsigned *tab) {
  return c ? (unsigned long long)c * mass_of(weight_of_q(d, tab)) : 0ull;
}

// tp_finish is a top-p row's cut and draw after tp_scan (C = 1),
// the row's maximum maxl known: it returns the winner's race rank key, or 0
// when the row takes the cut passes. It moves the window to [mq - 32767,
// mq] (mq = q_of(maxl)): the counts of the values it leaves are cleared
// and the listed tokens above the sample's window counted; then each thread
// weighs kQWin / T consecutive values (sums at scratch), and warp j < kTPM finds
// the j-th key's token's mass of larger q (the threads above its value's,
// plus its own thread's values above it) and the count of its own q,
// warp kTPM the total. Block-uniform.
__device__ __noinline__ unsigned long long tp_finish(const Slice sl, const float *row, float maxl, float ws,
                                                     float top_p, unsigned *qh, const int *ovf,
                                                     unsigned long long *scratch, Shared &sh) {
  const int tid = (int)threadIdx.x, lane = tid & 31, wid = tid >> 5, T = (int)blockDim.x;
  constexpr int kMask = kQWin - 1;
  const QRef qr = qref(maxl, ws);
  const int qs = sh.tp_qs, novf = sh.tp_novf;
  if (!qr.fast || qs == INT_MAX || novf > kTPOvf) {
    __syncthreads();  // every thread has read sh before thread 0 may write it again
    return 0ull;
  }
  // the logits of tp_key's tokens, loaded first: the loads overlap the
  // clearing and the weighing
  float cx = 0.f;
  if (tid < kTPM)
    if (const unsigned long long k = sh.tp_key[tid]) cx = fix(row[key_id(k)]);
  // The counts summed to what tp_scan tallied unless one passed 65,535.
  // That is checked after the weighing, which sums them again: sh.tp_chk
  // (minus what was tallied) gets what is cleared and taken off here,
  // less what is added back, plus that sum; 0 unless a count overflowed.
  const int mq = qr.mq32;
  unsigned short *h16 = reinterpret_cast<unsigned short *>(qh);
  // the values (qs, mq] take the slots of (qs - kQWin, mq - kQWin]
  const long long gap = (long long)mq - qs;
  const int n = gap >= kQWin ? kQWin : (int)gap;
  unsigned cl = 0;
  for (int j = tid; j < n; j += T) {
    const unsigned slot = (unsigned)(qs + 1 + j) & kMask;
    cl += h16[slot];
    h16[slot] = 0;
  }
  cl = __reduce_add_sync(0xffffffffu, cl);
  if (lane == 0 && cl) atomicAdd(&sh.tp_chk, (int)cl);
  // the listed tokens counted at qs (tp_scan's clamp), unless it was cleared
  if (tid == 0 && n < kQWin && novf > 0) {
    const unsigned slot = (unsigned)qs & kMask, v = h16[slot];
    h16[slot] = (unsigned short)(v - (unsigned)novf);
    atomicAdd(&sh.tp_chk, v < (unsigned)novf ? 1 << 30 : novf);  // fewer: a count overflowed
  }
  __syncthreads();
  int ra = 0;
  for (int k = tid; k < novf; k += T) {
    const float y = __fmul_rn(__int_as_float(ovf[k]), ws);
    if (y >= (float)(mq - (kQWin - 1)) - 0.5f) {  // y <= mq + 0.5: within +-2^22
      const int q = q_round(y) - 0x4B400000;
      if (q >= mq - (kQWin - 1)) {
        tp_add(qh, (unsigned)q & kMask);
        ra++;
      }
    }
  }
  ra = (int)__reduce_add_sync(0xffffffffu, (unsigned)ra);
  if (lane == 0 && ra) atomicSub(&sh.tp_chk, ra);
  __syncthreads();
  // thread t weighs d in [d0, d0 + kPer - 1], d0 = -32767 + kPer t (its
  // lane starts at a different value: fewer bank conflicts)
  const int kPer = kQWin / T;
  const int d0 = -(kQWin - 1) + kPer * tid;
  {
    // tp_mass in integers, no branch: value d's weight is m24 * 2^(E - 23)
    // (m24 = 2^23 | tab[d & 1023], E = d >> 10), so its mass_of is m24 *
    // 2^(E + 9) rounded to nearest even: m24 itself, the sum shifted left
    // by E + 9 after the loop, where E >= -9; else m24 >> rs rounded (rs
    // = -9 - E in 1 .. 23, (m24 + 2^(rs - 1) - 1 + bit rs of m24) >> rs).
    // Every value of a thread has d0's E but its last where that starts
    // the next band (d0 + kPer - 1 a multiple of 1024, every 1024 / kPer
    // threads): that one is taken off and weighed by tp_mass after the
    // loop. (The float form ran ~28 instructions a value, 86% of
    // tp_finish's, H100, session 19; in unsigned arithmetic the sum is
    // exact.)
    const int e0 = d0 >> 10;
    const unsigned rs = (unsigned)max(-9 - e0, 0), lsh = (unsigned)max(e0 + 9, 0);
    const unsigned hm1 = rs ? (1u << (rs - 1)) - 1u : 0u, pm = rs ? 1u : 0u;
    const unsigned qh_s = (unsigned)__cvta_generic_to_shared(qh),
                   tab_s = (unsigned)__cvta_generic_to_shared(sl.tab);
    unsigned long long a = 0;
    unsigned cs = 0;
    for (int r = 0; r < kPer; r++) {
      const int d = d0 + ((r + lane) & (kPer - 1));
      unsigned short c16;
      unsigned t;
      asm volatile("ld.shared.u16 %0, [%1];" : "=h"(c16) : "r"(qh_s + 2u * ((unsigned)(mq + d) & kMask)));
      asm volatile("ld.shared.u32 %0, [%1];" : "=r"(t) : "r"(tab_s + 4u * ((unsigned)d & (kQSize - 1))));
      const unsigned c = c16, m24 = t | 0x800000u;
      cs += c;
      a += (unsigned long long)c * ((m24 + hm1 + ((m24 >> rs) & pm)) >> rs);
    }
    unsigned long long s = a << lsh;
    if (const int dl = d0 + kPer - 1; (dl & 1023) == 0) {  // the last value, in the next band
      const unsigned c = tp_get(qh, (unsigned)(mq + dl) & kMask), m24 = sl.tab[dl & (kQSize - 1)] | 0x800000u;
      s -= ((unsigned long long)c * ((m24 + hm1 + ((m24 >> rs) & pm)) >> rs)) << lsh;
      s += tp_mass(c, dl, sl.tab);
    }
    scratch[tid] = s;
    cs = __reduce_add_sync(0xffffffffu, cs);
    if (lane == 0) atomicAdd(&sh.tp_chk, (int)cs);
  }
  if (tid < kTPM) sh.tp_x[tid] = cx;
  __syncthreads();
  if (sh.tp_chk != 0) {
    __syncthreads();
    return 0ull;
  }
  if (wid <= kTPM) {
    unsigned long long a = 0;
    int st = 0;  // 0: no token or weight 0 (never drawn), 1: mass 0 (dead), 2: bounds
    unsigned long long hi = 0;
    if (wid == kTPM) {  // the total
      for (int t = lane; t < T; t += 32) a += scratch[t];
    } else if (const unsigned long long key = sh.tp_key[wid]) {
      const float y = __fmul_rn(sh.tp_x[wid], ws);
      const int q = y >= (float)(mq + (int)kYMin) - 0.5f ? q_round(y) - 0x4B400000 : INT_MIN;
      const int d = q == INT_MIN ? INT_MIN : q - mq;
      if (d >= -(kQWin - 1)) {
        st = 2;
        const int t = (d + (kQWin - 1)) / kPer, e = d0 - kPer * tid + kPer * t + kPer - 1;  // t's last value
        for (int u = t + 1 + lane; u < T; u += 32) a += scratch[u];
        for (int v = d + 1 + lane; v <= e; v += 32) a += tp_mass(tp_get(qh, (unsigned)(mq + v) & kMask), v, sl.tab);
        if (lane == 0)
          hi = (unsigned long long)(tp_get(qh, (unsigned)(mq + d) & kMask) - 1u) * mass_of(weight_of_q(d, sl.tab));
      } else if (d >= (int)kYMin) {
        st = 1;
      }
    }
    a = warp_sum_u(a);
    if (lane == 0) {
      sh.tp_lo[wid] = a;
      sh.tp_hi[wid] = a + hi;
      sh.tp_st[wid] = st;
    }
  }
  __syncthreads();
  if (tid == 0) {
    // the target, as cut computes it from the same exact sums
    const double target = (double)top_p * (double)sh.tp_lo[kTPM];
    unsigned long long win = 0;
    for (int j = 0; j < kTPM; j++) {
      const unsigned long long k = sh.tp_key[j];
      if (!k) break;
      if (sh.tp_st[j] != 2) continue;  // never drawn, or outside the nucleus
      if ((double)sh.tp_hi[j] < target) {  // the prefix before it has not reached the target
        win = k;
        break;
      }
      if (!((double)sh.tp_lo[j] >= target)) {  // its own q holds the cut: the cut passes decide
        break;
      }
    }
    sh.tp_win = win;
  }
  __syncthreads();
  prof(31);
  return sh.tp_win;
}

// kf_scan is the max pass of a top-k row whose top k come from lists
// (KList, k <= kKFast): each thread's argmax, and the block's candidates,
// each warp's list cut to the ids reaching its k-th largest logit, as rank
// keys sorted descending at the start of the histogram space (the race's
// buffers: the row does not race in this pass, and the lists lie past
// them); sh.k_cnt gets how many of them the row's merge takes, sh.kover
// whether a list or the gathered keys overflowed. Not inlined: the other
// rows' scans keep their registers.
__device__ __noinline__ ArgMax kf_scan(const Slice sl, int *lst, int capw, int k, SharedKF &sh) {
  const int lane = (int)(threadIdx.x & 31), wid = (int)(threadIdx.x >> 5);
  float m = -INFINITY;
  int bi = INT_MAX;
  KList kl;
  kl.w.ids = lst;
  kl.w.cap = capw;
  kl.k = k;
  kl.block_thr = &sh.k_thr;
  // the slice's first kKSample groups of four a thread (the first
  // blockDim.x * 4 * kKSample ids; one group when the slice is shorter)
  // are a sample: a floor that k of them reach (block_kth) is a
  // floor from the start, so the lists take a few hundredths of the slice
  // and rarely need a cut (one group a thread, 2,048 ids: 135 us at 256
  // rows, H100, session 8). The scan
  // then reads those ids again (from L2 or the staged slice) like any
  // other. (Taking the sample inside the scan's first step instead kept
  // its state alive through the loop: 168 us at 256 rows against 144
  // without a sample, H100.)
  if (sl.vec && (sl.n >> 2) >= (int)blockDim.x) {  // block-uniform
    const float4 *xs4 = reinterpret_cast<const float4 *>(sl.xs);
    const unsigned t = (sl.n >> 2) >= kKSample * (int)blockDim.x ? block_kth<kKSample>(xs4, k, sh)
                                                                 : block_kth<1>(xs4, k, sh);
    kl.w.xfl = ord2f(t);
    if (threadIdx.x == 0) atomicMax(kl.block_thr, t);
  }
  for_each_wq(sl, [&](int i0, float4 v, unsigned valid) {
    const float g = quad_max(v);
    quad_argmax(i0, v, g, m, bi);
    // x >= xfl, x fixed; the group's max tests it first
    const float f = kl.w.xfl;
    if (g >= f) {
      const float4 xv = fix4(v);
      kl.w.pend = valid & quad_ge(xv, f);
    }
    kl.w.pbase = i0;
  }, [](int, float) {}, [&] { kl.group(sl.xs, sl.lo); });
  prof(24);
  // a list longer than a warp sorts is cut to its k first (ties may keep
  // it longer: then the gather below)
  if (!kl.over && kl.w.cnt > kKFast) kl.cut(sl.xs, sl.lo);
  prof(25);
  unsigned long long *kb = reinterpret_cast<unsigned long long *>(sl.hist1);
  if (lane == 0) sh.red_i[wid] = kl.over ? -1 : kl.w.cnt;
  __syncthreads();
  int off = 0, total = 0;
  bool over = false, fit = true;
  for (int i = 0; i < nwarps(); i++) {
    const int c = sh.red_i[i];
    over = over || c < 0;
    fit = fit && c <= kKFast;
    off += i < wid ? max(c, 0) : 0;
    total += max(c, 0);
  }
  if (!over && fit) {  // block-uniform
    // each warp sorts its list's rank keys (warp_sort64) into its slot
    // of kKFast keys, keeping its best k; then log2(warps) rounds merge
    // pairs of slots, each keeping the best k (a key's place in the
    // merge is its rank in its own slot plus the keys of the other slot
    // above it), one block barrier a round: slot 0 ends with the block's
    // best k, sorted. (The block-wide bitonic sort of every warp's keys,
    // below for lists longer than kKFast, took ~17% of the kernel's
    // instructions at 256 rows.)
    unsigned long long v[2];
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int j = lane + 32 * e;
      const int id = j < kl.w.cnt ? kl.w.ids[j] : 0;
      v[e] = j < kl.w.cnt ? rank_key(fix(sl.xs[id - sl.lo]), id) : 0ull;
    }
    warp_sort64(v);
    int len = min(kl.w.cnt, k);
    unsigned long long *mine = kb + wid * kKFast;
#pragma unroll
    for (int e = 0; e < 2; e++)
      if (lane + 32 * e < len) mine[lane + 32 * e] = v[e];
    if (lane == 0) sh.k_len[wid] = len;
    for (int r = 1; r < nwarps(); r <<= 1) {
      __syncthreads();  // the slots and lengths of the last round
      if ((wid & (2 * r - 1)) == 0 && wid + r < nwarps()) {  // warp-uniform
        const unsigned long long *other = kb + (wid + r) * kKFast;
        const int len2 = sh.k_len[wid + r];
        unsigned long long a[2], b[2];
        int pa[2], pb[2];
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int j = lane + 32 * e;
          a[e] = j < len ? mine[j] : 0ull;
          b[e] = j < len2 ? other[j] : 0ull;
          pa[e] = j + keys_above(other, len2, a[e]);
          pb[e] = j + keys_above(mine, len, b[e]);
        }
        __syncwarp();  // every lane has read its keys before any is overwritten
#pragma unroll
        for (int e = 0; e < 2; e++) {
          if (a[e] && pa[e] < k) mine[pa[e]] = a[e];
          if (b[e] && pb[e] < k) mine[pb[e]] = b[e];
        }
        len = min(len + len2, k);
        if (lane == 0) sh.k_len[wid] = len;
      }
    }
    __syncthreads();  // slot 0 (kb) done; also: every warp has read red_i before the max pass's reduction writes it
    total = sh.k_len[0];
  } else {
    over = over || total > kGatherCap;  // block-uniform
    if (!over)
      for (int j = lane; j < kl.w.cnt; j += 32) {
        const int id = kl.w.ids[j];
        kb[off + j] = rank_key(fix(sl.xs[id - sl.lo]), id);
      }
    __syncthreads();  // also: every warp has read red_i before the max pass's reduction writes it
    if (!over) bitonic_desc(kb, total);
  }
  prof(26);
  if (threadIdx.x == 0) {
    sh.kover = over;
    sh.k_cnt = min(total, k);
  }
  return ArgMax{m, bi};
}

// kf_finish is a top-k row's cut and draw from its lists (after kf_scan
// and the max pass's exchange): every block sends its best k keys to
// block 0 (a cluster barrier; one block has them already), where warp 0
// takes the row's top k (sorted), cuts top-p within
// them (the first rank whose prefix of fixed-point masses reaches top_p
// of their total, as cut does), drops min-p and weight-0 tokens and races
// the rest (a key holds its logit: x = ord2f(key >> 32)). Block 0's
// thread 0 gets the winner; others get none. Block-uniform.
template <int C>
__device__ __noinline__ ArgMax kf_finish(const Slice sl, int k, float top_p, float min_p,
                                         unsigned long long noise_key, float maxl, float ws,
                                         SharedKF &sh) {
  const int rank = Cluster<C>::rank();
  const int tid = (int)threadIdx.x, lane = tid & 31;
  const unsigned long long *kb = reinterpret_cast<const unsigned long long *>(sl.hist1);
  ArgMax win{-INFINITY, INT_MAX};
  if constexpr (C > 1) {
    unsigned long long *dst = Cluster<C>::peer(sl.gbuf, 0) + rank * k;
    const int c = sh.k_cnt;
    for (int j = tid; j < k; j += (int)blockDim.x) dst[j] = j < c ? kb[j] : 0ull;
    Cluster<C>::sync();
    prof(27);
    if (rank != 0) return win;
    bitonic_desc(sl.gbuf, C * k);  // the row's top k: gbuf[0, k)
    prof(28);
    kb = sl.gbuf;
  }  // one block: its sorted keys are the row's (kf_scan)
  if (tid >= 32) return win;
  const QRef qr = qref(maxl, ws);
  unsigned long long key[2], fm[2];
  float x[2], wt[2];
  int id[2];
#pragma unroll
  for (int e = 0; e < 2; e++) {  // rank 2 * lane + e (k <= 64)
    const int j = 2 * lane + e;
    key[e] = j < k && (C > 1 || j < sh.k_cnt) ? kb[j] : 0ull;
    x[e] = ord2f((unsigned)(key[e] >> 32));
    id[e] = key_id(key[e]);
    int q;
    wt[e] = key[e] ? weight(x[e], qr, ws, sl.tab, q) : 0.f;
    fm[e] = mass_of(wt[e]);
  }
  int jc = k - 1;  // the last survivor's rank
  if (top_p > 0.f && top_p < 1.f) {
    const unsigned long long s2 = fm[0] + fm[1];
    unsigned long long inc = s2;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long t = __shfl_up_sync(0xffffffffu, inc, o);
      if (lane >= o) inc += t;
    }
    const unsigned long long total = __shfl_sync(0xffffffffu, inc, 31);
    const double target = (double)top_p * (double)total;
    const unsigned long long ex = inc - s2;
    const unsigned b0 = __ballot_sync(0xffffffffu, key[0] != 0 && (double)(ex + fm[0]) >= target);
    const unsigned b1 = __ballot_sync(0xffffffffu, key[1] != 0 && (double)(ex + s2) >= target);
    const int j0 = b0 ? 2 * (__ffs(b0) - 1) : k, j1 = b1 ? 2 * (__ffs(b1) - 1) + 1 : k;
    jc = min(jc, min(j0, j1));
  }
#pragma unroll
  for (int e = 0; e < 2; e++) {
    if (key[e] && 2 * lane + e <= jc && wt[e] > 0.f && wt[e] >= min_p) {
      const float kk = __fadd_rn(__fmul_rn(x[e], ws), noise_of(noise_hash(noise_key, id[e]), sh.logt));
      if (race_better(kk, id[e], win.m, win.i)) {
        win.m = kk;
        win.i = id[e];
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float k2 = __shfl_xor_sync(0xffffffffu, win.m, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, win.i, o);
    if (race_better(k2, i2, win.m, win.i)) {
      win.m = k2;
      win.i = i2;
    }
  }
  if (lane != 0) win = ArgMax{-INFINITY, INT_MAX};
  return win;
}

// kth_key returns the k-th largest rank key (1-based) among the slice
// members with quantized exponent qs ranking at or before limit, over the
// whole cluster: by gathering them when they are few, else by bisection.
// A block finds its members among the bn rank keys at blist (a superset
// its cut pass listed) when blist is not null, else by a pass over its
// slice.
template <int C>
__device__ unsigned long long kth_key(const Slice &sl, float maxl, float ws, int qs,
                                      unsigned long long limit, long long k, Shared &sh,
                                      const unsigned long long *blist, int bn) {
  const int lane = threadIdx.x & 31;
  const float2 win = q_window(maxl, ws, qs, qs);
  const QRef qr = qref(maxl, ws);
  auto is_member = [&](int i, float x, unsigned long long &key) {
    if (x < win.x || x > win.y) return false;
    int q;
    weight(x, qr, ws, sl.tab, q);
    if (q != qs) return false;
    key = rank_key(x, i);
    return !(limit && key < limit);
  };
  if (threadIdx.x == 0) sh.x.cnt = 0;
  __syncthreads();
  auto note = [&](int i, float x) {
    unsigned long long key = 0;
    const bool in = is_member(i, x, key);
    const unsigned am = __activemask();
    const unsigned hit = __ballot_sync(am, in);
    if (hit == 0) return;
    const int leader = __ffs(am) - 1;
    int start = 0;
    if (lane == leader) start = atomicAdd(&sh.x.cnt, __popc(hit));
    start = __shfl_sync(am, start, leader);
    if (in) {
      const int pos = start + __popc(hit & ((1u << lane) - 1));
      if (pos < kLocalCap) sl.local[pos] = key;
    }
  };
  if (blist) {
    // warp-uniform trips (the whole warp votes together): lanes past the
    // list note nothing
    for (int jb = (int)threadIdx.x - lane; jb < bn; jb += (int)blockDim.x) {
      const int j = jb + lane;
      unsigned long long key = 0;
      bool in = false;
      if (j < bn) {
        const unsigned long long kk = blist[j];
        in = is_member(key_id(kk), ord2f((unsigned)(kk >> 32)), key);
      }
      const unsigned hit = __ballot_sync(0xffffffffu, in);
      if (hit == 0) continue;  // warp-uniform
      int start = 0;
      if (lane == 0) start = atomicAdd(&sh.x.cnt, __popc(hit));
      start = __shfl_sync(0xffffffffu, start, 0);
      if (in) {
        const int pos = start + __popc(hit & ((1u << lane) - 1));
        if (pos < kLocalCap) sl.local[pos] = key;
      }
    }
  } else {
    for_each(sl, note);
  }
  Cluster<C>::sync();
  if (threadIdx.x == 0) {
    int total = 0;
    bool fits = true;
    for (int p = 0; p < C; p++) {
      const int c = Cluster<C>::peer(&sh.x, p)->cnt;
      sh.offs[p] = total;
      total += c;
      fits = fits && c <= kLocalCap;
    }
    sh.offs[C] = total;
    sh.g_total = total;
    sh.g_fits = fits && total <= kGatherCap;
  }
  __syncthreads();
  const int total = sh.g_total;
  const bool fits = sh.g_fits;
  if (total == 0) return 0;  // cannot happen: the exact-q histogram entry had members
  if (k < 1) k = 1;
  if (k > total) k = total;
  if (fits) {
    // every block gathers and sorts the same members: the same answer
    for (int p = 0; p < C; p++) {
      const int base = sh.offs[p], c = sh.offs[p + 1] - base;
      const unsigned long long *src = Cluster<C>::peer(sl.local, p);
      for (int j = threadIdx.x; j < c; j += (int)blockDim.x) sl.gbuf[base + j] = src[j];
    }
    __syncthreads();
    bitonic_desc(sl.gbuf, total);
    return sl.gbuf[k - 1];
  }
  // Bisection over the key: the largest K with count(key >= K) >= k.
  unsigned long long mn = ~0ull, mx = 0;
  for_each(sl, [&](int i, float x) {
    unsigned long long key;
    if (!is_member(i, x, key)) return;
    mn = key < mn ? key : mn;
    mx = key > mx ? key : mx;
  });
  mn = block_min_u(mn, sh);
  mx = block_max_u(mx, sh);
  if (threadIdx.x == 0) {
    sh.x.kmin = mn;
    sh.x.kmax = mx;
  }
  Cluster<C>::sync();
  if (threadIdx.x == 0) {
    unsigned long long a = ~0ull, b = 0;
    for (int p = 0; p < C; p++) {
      const Xchg *x = Cluster<C>::peer(&sh.x, p);
      a = x->kmin < a ? x->kmin : a;
      b = x->kmax > b ? x->kmax : b;
    }
    sh.u_lo = a;
    sh.u_hi = b;
  }
  __syncthreads();
  unsigned long long lo = sh.u_lo, hi = sh.u_hi;
  int slot = 0;
  while (lo < hi) {  // invariant: count(key >= lo) >= k
    const unsigned long long mid = lo + (hi - lo) / 2 + 1;
    unsigned long long c = 0;
    for_each(sl, [&](int i, float x) {
      unsigned long long key;
      if (is_member(i, x, key) && key >= mid) c++;
    });
    c = block_sum_u(c, sh);
    if (threadIdx.x == 0) sh.x.bis[slot] = c;
    Cluster<C>::sync();
    if (threadIdx.x == 0) {
      unsigned long long a = 0;
      for (int p = 0; p < C; p++) a += Cluster<C>::peer(&sh.x, p)->bis[slot];
      sh.u_all[slot] = a;
    }
    __syncthreads();
    if ((long long)sh.u_all[slot] >= k)
      lo = mid;
    else
      hi = mid - 1;
    slot ^= 1;
  }
  return lo;
}

// cut finds the token at which a rank-order prefix of the tokens ranking
// at or before limit (0: all) reaches a target: a count (by_mass false,
// target = goal) or goal times those tokens' total weight. It returns that
// token's rank key, or 0 when the set never reaches the target (no cut).
// Tokens of weight 0 are left out: they are never drawn, and a cut among
// them keeps every positive weight, as no cut does. Uniform over the
// cluster: every block returns the same key.
template <int C>
__device__ unsigned long long cut(const Slice &sl, float maxl, float ws, bool by_mass,
                                  double goal, unsigned long long limit, Shared &sh) {
  const int rank = Cluster<C>::rank();
  const int tid = threadIdx.x, lane = tid & 31;
  const QRef qr = qref(maxl, ws);
  // 1. level-1 histogram over -q >> 6 (bucket 0 ranks first)
  for (int b = tid; b < kB1; b += (int)blockDim.x) sl.hist1[b] = 0;
  __syncthreads();
  for_each(sl, [&](int i, float x) {
    int q;
    const float w = weight(x, qr, ws, sl.tab, q);
    if (w == 0.f) return;
    if (limit && rank_key(x, i) < limit) return;
    hist_add(sl.hist1 + ((-q) >> kB2Bits), by_mass ? mass_of(w) : 1ull);
  });
  prof(10);
  Cluster<C>::sync();
  prof(11);
  // this block sums its range of buckets over the cluster
  constexpr int R = (kB1 + C - 1) / C;
  const int b0 = min(kB1, rank * R), b1 = min(kB1, b0 + R);
  unsigned long long mine = 0;
  for (int b = b0 + tid; b < b1; b += (int)blockDim.x) {
    unsigned long long t = 0;
    for (int p = 0; p < C; p++) t += Cluster<C>::peer(sl.hist1, p)[b];
    sl.own[b - b0] = t;
    mine += t;
  }
  prof(12);
  mine = block_sum_u(mine, sh);
  if (tid == 0) sh.x.rtot = mine;
  Cluster<C>::sync();
  prof(13);
  if (tid == 0) {
    unsigned long long a = 0, t = 0;
    for (int p = 0; p < C; p++) {
      const unsigned long long r = Cluster<C>::peer(&sh.x, p)->rtot;
      if (p < rank) a += r;
      t += r;
    }
    sh.u_above = a;
    sh.u_total = t;
  }
  __syncthreads();
  const unsigned long long above = sh.u_above;
  // the target, as the CPU's cutToken computes it from the same exact sums
  const double target = by_mass ? goal * (double)sh.u_total : goal;
  auto reached = [&](unsigned long long v) { return (double)v >= target; };
  if (tid < 32) {
    // warp 0 scans the range: lane j owns a run of buckets
    int fb = -1;
    unsigned long long facc = 0;
    if (!reached(above) && reached(above + mine)) {
      const int per = (b1 - b0 + 31) / 32;
      const int j0 = min(b1, b0 + lane * per), j1 = min(b1, j0 + per);
      unsigned long long run = 0;
      for (int b = j0; b < j1; b++) run += sl.own[b - b0];
      unsigned long long inc = run;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        unsigned long long t = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += t;
      }
      unsigned long long acc = above + inc - run;
      int hit = -1;
      unsigned long long hacc = 0;
      if (!reached(acc) && reached(acc + run)) {
        for (int b = j0; b < j1; b++) {
          const unsigned long long nx = acc + sl.own[b - b0];
          if (reached(nx)) {
            hit = b;
            hacc = acc;
            break;
          }
          acc = nx;
        }
      }
      const unsigned hm = __ballot_sync(0xffffffffu, hit >= 0);
      if (hm) {
        const int src = __ffs(hm) - 1;
        fb = __shfl_sync(0xffffffffu, hit, src);
        facc = __shfl_sync(0xffffffffu, hacc, src);
      }
    }
    if (tid == 0) {
      sh.x.fb = fb;
      sh.x.facc = facc;
    }
  }
  prof(14);
  Cluster<C>::sync();
  prof(15);
  if (tid == 0) {
    int b = -1;
    unsigned long long a = 0;
    for (int p = 0; p < C; p++) {
      const Xchg *x = Cluster<C>::peer(&sh.x, p);
      const int f = x->fb;
      const unsigned long long fa = x->facc;
      if (f >= 0) {
        b = f;
        a = fa;
      }
    }
    sh.i_bstar = b;
    sh.u_acca = a;
  }
  __syncthreads();
  const int bstar = sh.i_bstar;
  const unsigned long long acc_a = sh.u_acca;
  if (bstar < 0) return 0;  // the whole set never reaches the target
  // 2. the exact q within bucket bstar; the bucket's members are listed
  // (rank keys) in the space of hist1 and own, free now, for step 3
  if (tid < kB2) sh.x.h2[tid] = 0;
  if (tid == 0) sh.blist_cnt = 0;
  __syncthreads();
  unsigned long long *blist = sl.hist1;
  const int bcap = (int)((reinterpret_cast<const unsigned char *>(sl.local) -
                          reinterpret_cast<const unsigned char *>(sl.hist1)) / 8);
  const float2 win = q_window(maxl, ws, -(bstar * kB2 + kB2 - 1), -bstar * kB2);
  for_each(sl, [&](int i, float x) {
    if (x < win.x || x > win.y) return;
    int q;
    const float w = weight(x, qr, ws, sl.tab, q);
    if (w == 0.f || ((-q) >> kB2Bits) != bstar) return;
    const unsigned long long key = rank_key(x, i);
    if (limit && key < limit) return;
    hist_add(sh.x.h2 + ((-q) & (kB2 - 1)), by_mass ? mass_of(w) : 1ull);
    const int pos = atomicAdd(&sh.blist_cnt, 1);
    if (pos < bcap) blist[pos] = key;
  });
  prof(16);
  Cluster<C>::sync();
  prof(17);
  if (tid < kB2) {
    unsigned long long h = 0;
    for (int p = 0; p < C; p++) h += Cluster<C>::peer(&sh.x, p)->h2[tid];
    sh.h2m[tid] = h;
  }
  __syncthreads();
  if (tid < 32) {
    // warp 0: lane j owns q offsets 2j, 2j+1 (rank order)
    const unsigned long long h0 = sh.h2m[2 * lane], h1 = sh.h2m[2 * lane + 1];
    unsigned long long inc = h0 + h1;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      unsigned long long t = __shfl_up_sync(0xffffffffu, inc, o);
      if (lane >= o) inc += t;
    }
    const unsigned long long ex = acc_a + inc - (h0 + h1);
    int j = -1;
    unsigned long long a = 0;
    if (h0 && reached(ex + h0)) {
      j = 2 * lane;
      a = ex;
    } else if (h1 && reached(ex + h0 + h1)) {
      j = 2 * lane + 1;
      a = ex + h0;
    }
    const unsigned hm = __ballot_sync(0xffffffffu, j >= 0);
    const int src = hm ? __ffs(hm) - 1 : 0;
    j = __shfl_sync(0xffffffffu, j, src);
    a = __shfl_sync(0xffffffffu, a, src);
    if (lane == 0) {
      sh.i0 = hm ? j : kB2 - 1;
      sh.u0 = hm ? a : acc_a;
    }
  }
  __syncthreads();
  const int qs = -(bstar * kB2 + sh.i0);
  const unsigned long long acc_b = sh.u0;
  // 3. the members of exact q qs share one weight: the cut is the k-th of
  // them, the first k with acc_b + k * (its fixed-point weight) reaching
  // the target (a division, then corrected to the exact integer test)
  const unsigned long long fw = by_mass ? mass_of(weight_of_q(qs, sl.tab)) : 1ull;
  long long k = (long long)ceil((target - (double)acc_b) / (double)fw);
  if (k < 1) k = 1;
  while (k > 1 && reached(acc_b + (unsigned long long)(k - 1) * fw)) k--;
  for (int it = 0; it < 64 && !reached(acc_b + (unsigned long long)k * fw); it++) k++;
  prof(18);
  const int bn = sh.blist_cnt;  // read after the barriers above
  const unsigned long long key = kth_key<C>(sl, maxl, ws, qs, limit, k, sh, bn <= bcap ? blist : nullptr, bn);
  prof(19);
  return key;
}

template <int C, int T, bool KF, bool TP>
__global__ void __launch_bounds__(T, 1024 / T) sample_kernel(
    float *logits, int V, int S, int staged, int ringed, int tp_flags, const tk_sample_params *params,
    const int32_t *hist_ids, const int32_t *hist_counts, tk_sample_result *results) {
  // dyn on a 128-byte boundary whatever the size of the static sh before
  // it: with 16, a field added to Shared moved dyn by 16 bytes and cost
  // ~5% in every mode at 256 rows (H100, session 13), and 128 ran top-k 50
  // + top-p 0.9 at 256 rows in 91-92 us against 99 with 16, the other
  // modes 1-2% faster (session 14, bench/cuda/results/2026-11-27-h100-s14).
  // With the regions inside it rounded to 128 bytes as well (round128),
  // each warp's 512-byte ring stage starts a 128-byte line: greedy, min-p
  // and greedy + 5 logprobs another 1-2% at 256 rows. Why lines matter
  // here is not established.
  extern __shared__ __align__(128) unsigned char dyn[];
  __shared__ std::conditional_t<KF, SharedKF, Shared> sh;
  block_time(tp_flags, 1);
  const int rank = Cluster<C>::rank();
  const int row = blockIdx.x / C;
  const tk_sample_params p = params[row];
  float *l = logits + (size_t)row * V;
  tk_sample_result *res = results + row;
  const int tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;
  const int lo = min(V, rank * S), n = min(V, lo + S) - lo;

  // shared memory: [slice S floats if staged] [table] [hist1] [own] [local] [gbuf]
  // [ring if not staged]
  unsigned char *ptr = dyn;
  float *stage = reinterpret_cast<float *>(ptr);
  if (staged) ptr += stage_bytes(S);
  unsigned *tab = reinterpret_cast<unsigned *>(ptr);
  ptr += kQSize * 4;
  Slice sl;
  // the top-p kernel (TP): the ring first, then the regions below with the
  // histogram of tp_scan over all but the race's buffers, then the pools
  // and the list (tp_smem)
  if constexpr (TP) {
    sl.ring = ringed ? reinterpret_cast<float4 *>(ptr) : nullptr;
    if (ringed) ptr += ring_bytes(T);
  }
  sl.hist1 = reinterpret_cast<unsigned long long *>(ptr);
  ptr += hist1_bytes();
  sl.own = reinterpret_cast<unsigned long long *>(ptr);
  ptr += own_bytes(C);
  sl.local = reinterpret_cast<unsigned long long *>(ptr);
  ptr += (size_t)kLocalCap * 8;
  sl.gbuf = reinterpret_cast<unsigned long long *>(ptr);
  ptr += (size_t)kGatherCap * 8;
  if constexpr (!TP) sl.ring = ringed ? reinterpret_cast<float4 *>(ptr) : nullptr;  // ring_bytes(T) more
  unsigned *tp_qh = nullptr;
  unsigned long long *tp_pools = nullptr;
  int *tp_ovf = nullptr;
  if constexpr (TP) {
    unsigned char *q = reinterpret_cast<unsigned char *>(sl.hist1) + nwarps() * kRaceWarpBytes;
    tp_qh = reinterpret_cast<unsigned *>(q);
    tp_pools = reinterpret_cast<unsigned long long *>(q + (size_t)kQWin * 2);
    tp_ovf = reinterpret_cast<int *>(tp_pools + nwarps() * 64);
  }
  sl.tab = tab;
  sl.lo = lo;
  sl.n = n;

  if (blockIdx.x == 0 && tid == 0)
    for (int i = 1; i < 32; i++) g_prof[i] = 0;
  prof(0);
  for (int j = tid; j < kQSize; j += (int)blockDim.x) tab[j] = g_exp_mant[j];
  for (int j = tid; j < kLogSize; j += (int)blockDim.x) sh.logt[j] = g_log_tab[j];
  if (tid == 0) {
    sh.race_thr = f2ord(-INFINITY);
    sh.mp_max = f2ord(-INFINITY);
    sh.top_thr = f2ord(-INFINITY);
    sh.mp_over = 0;
    if constexpr (KF) {
      sh.kover = 2;  // not a top-k row cut from lists (kf_scan writes 0 or 1)
      sh.k_thr = f2ord(-INFINITY);
    }
  }
  for (int j = tid; j < kMaxNW * kTopReg; j += (int)blockDim.x) sh.top_pub[j] = 0;
  // 1. penalties on this slice's ids, in place (history ids are distinct:
  // no two threads write one logit)
  for (int j = tid; j < p.hist_len; j += (int)blockDim.x) {
    const int id = hist_ids[p.hist_off + j];
    if (id < lo || id >= lo + n) continue;
    const int c = hist_counts[p.hist_off + j];
    float x = fix(l[id]);
    if (p.repetition != 1.f) x = x > 0.f ? __fdiv_rn(x, p.repetition) : __fmul_rn(x, p.repetition);
    if (c > 0) x = __fsub_rn(x, __fadd_rn(__fmul_rn(p.frequency, (float)c), p.presence));
    l[id] = x;
  }
  if (p.hist_len > 0) __threadfence();
  __syncthreads();
  if (staged) {
    // asynchronous copies: every load of the slice in flight at once
    const unsigned s0 = (unsigned)__cvta_generic_to_shared(stage);
    int j0 = 0;
    if ((V & 3) == 0 && ((uintptr_t)logits & 15) == 0) {
      for (int j = tid; j < (n >> 2); j += (int)blockDim.x)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s0 + 16 * j),
                     "l"(l + lo + 4 * j));
      j0 = 4 * (n >> 2);
    }
    for (int j = j0 + tid; j < n; j += (int)blockDim.x)
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s0 + 4 * j), "l"(l + lo + j));
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    prof(1);
    sl.xs = stage;
    sl.vec = true;
  } else {
    sl.xs = l + lo;
    sl.vec = (V & 3) == 0 && ((uintptr_t)logits & 15) == 0;
  }
  __syncthreads();

  prof(2);
  // 2. max (ties to the lowest id) and, for logprobs, sum exp(l - max)
  const bool want_lp = p.want_logprobs != 0 || p.n_top > 0;
  const float ws = p.w_scale;
  const bool topk = p.top_k > 0 && p.top_k < V;
  const bool topp = p.top_p > 0.f && p.top_p < 1.f;
  // plain: no truncation, so the race runs over the finite logits in this
  // very pass
  const bool plain = p.greedy == 0 && !topk && !topp && p.min_p == 0.f;
  // the race's candidate buffers take the histogram space (free in the
  // race passes): nwarps * kRaceWarpBytes <= 20 KB (1024 threads) fits
  // hist1 + own + local (>= 26 KB for C <= 2, >= 19 KB for 512 threads)
  Race race;
  race.ws = ws;
  race.nws = __fmul_rn(-ws, 1.f / 1024.f);
  race.init_t32();
  const float nws32 = __fmul_rn(race.nws, 1.f / 32.f);  // add4v's
  // add4v, except in the kernel with both the top-k lists and the
  // one-read top-p (the mixed top-p / top-k 50 batch took 129 us at 256
  // rows with it there, 103 without, H100, session 19)
  constexpr bool kV = !(KF && TP);
  race.nk = p.noise_key;
  race.lt = sh.logt;
  race.xs = sl.xs;
  race.lo = lo;
  race.bid = reinterpret_cast<int *>(reinterpret_cast<unsigned char *>(sl.hist1) + wid * kRaceWarpBytes);
  race.block_thr = &sh.race_thr;
  auto keep_all = [](int, float) { return true; };
  if (plain) race.seed(lo + 4 * tid, lo + n);
  // the list space after the race's buffers (hist1 to the end of gbuf,
  // free in the max pass): a warp's share, used where it holds at least
  // 256 ids. 1024-thread blocks never have that much (96 or 160 ids a
  // warp), so their kernels get capw = 0 at compile time and carry none of
  // the lists' code: with it, their scans of every mode ran 2-11 us
  // (6-22%) slower at 64 rows after changes to the list paths alone (H100,
  // session 10).
  int *lst = nullptr;
  int capw = 0;
  if constexpr (T < 1024) {
    unsigned char *beg = reinterpret_cast<unsigned char *>(sl.hist1) + nwarps() * kRaceWarpBytes;
    unsigned char *end = reinterpret_cast<unsigned char *>(sl.gbuf + kGatherCap);
    capw = (int)(((end - beg) / 4 / nwarps()) & ~31);
    lst = reinterpret_cast<int *>(beg) + wid * capw;
  }
  // min-p without other cuts or logprobs, on a slice read in place (a
  // staged slice is cheap to read twice): the max pass lists the possible
  // survivors (MinpList)
  const bool mp = p.greedy == 0 && !topk && !topp && p.min_p > 0.f && !want_lp && capw >= 256 && !staged;
  // top-k up to kKFast without logprobs: the max pass lists the possible
  // top k (KList), and the cut, top-p, min-p and the race work on those k
  // keys (kf: where the lists have room for k well past a prune, and the
  // block's gathered lists fit the race's buffers)
  const bool kf = KF && p.greedy == 0 && topk && p.top_k <= kKFast && !want_lp && capw >= 256 &&
                  capw <= kKSlots * 32 && 2 * p.top_k <= capw - 128 && nwarps() * p.top_k <= kGatherCap &&
                  kGatherCap * 8 <= nwarps() * kRaceWarpBytes;  // the gather and its sort fit before the lists
  // top-p of at least TK_SAMPLE_TOPP_FAST_MIN (any with
  // TK_SAMPLE_TOPP_FAST_ALL) without top-k, min-p or logprobs, one block a
  // row: the max pass keeps the best race keys, and one more read cuts
  // (tp_scan, tp_finish). With min-p the 7 best keys could all fall below
  // it, and the row would read the logits six times.
  const bool tpf = TP && p.greedy == 0 && topp && !topk && !want_lp && p.min_p == 0.f &&
                   p.top_p >= ((tp_flags & TK_SAMPLE_TOPP_FAST_ALL) ? 0.f : TK_SAMPLE_TOPP_FAST_MIN);
  MinpList ml;
  ml.w.ids = lst;
  ml.w.cap = capw;
  ml.w.xfl = -FLT_MAX;
  ml.qmin = p.min_p > 0.f ? minp_q(p.min_p) : 0;
  ml.ws = ws;
  ml.block_max = &sh.mp_max;
  {
    float m = -INFINITY, s = 0.f;
    int bi = INT_MAX;
    // a thread sees its ids in increasing order: ties keep the first.
    // The argmax is taken a group of four at a time (quad_argmax).
    if (want_lp) {
      // up to kTopReg top logprobs: the block's candidates are listed
      // (TopList) during the pass, then each thread keeps its best rank
      // keys, sorted, in registers (instead of a pass a rank). With
      // 1024-thread blocks the threads keep them during the pass: a token
      // goes to the key compare only if its logit reaches tg, the larger
      // of the thread's last kept logit and the block's best such logit.
      unsigned long long tk[kTopReg];
#pragma unroll
      for (int j = 0; j < kTopReg; j++) tk[j] = 0;
      const bool top_reg = p.n_top > 0 && p.n_top <= kTopReg;
      const bool top_list = top_reg && capw >= 256;
      const int end = lo + n;  // for_each_wq pads past the slice
      TopList tl;
      tl.w.ids = lst;
      tl.w.cap = capw;
      tl.block_thr = &sh.top_thr;
      tl.pub = sh.top_pub;
      float tg = -INFINITY;
      // the slice's first kKSample groups of four a thread are a sample:
      // each warp takes the kTopReg-th largest of its lanes' maxima
      // (warp_top_floor; kTopReg of its ids reach it) as its floor from
      // the start, and the block's floor is the largest warp's, so that a
      // warp lists a few ids of its share instead of pruning every few
      // groups until the block's floor has risen (11% of a warp's groups
      // pruned at 256 rows before). No block barrier: a block-wide
      // bisection (block_kth) cost about as many instructions as the
      // prunes it saved.
      if (top_reg && sl.vec && (n >> 2) >= kKSample * (int)blockDim.x) {  // block-uniform
        const unsigned t = warp_top_floor<kKSample>(reinterpret_cast<const float4 *>(sl.xs), kTopReg);
        tl.w.xfl = tg = ord2f(t);
        if (lane == 0) atomicMax(&sh.top_thr, t);
      }
      // s is the sum of exp(x - rs): before a group of four, rs moves up
      // to the group's max when that is more than 16 above it, so no term
      // exceeds e^16 and there is one rescale a thread for most rows.
      // rs starts at -FLT_MAX (finite: x - rs is never NaN).
      float rs = -FLT_MAX, rs16 = -FLT_MAX;  // rs16 = rs + 16
      constexpr float kL2E = 1.4426950408889634f;
      auto term = [&](float x) { return ex2(__fmul_rn(__fsub_rn(fmaxf(x, -INFINITY), rs), kL2E)); };
      // one loop a shape (listed or kept in registers; racing or not),
      // so that no step tests a row's settings
      auto scan = [&](auto listed, auto racing) {
        constexpr bool L = decltype(listed)::value, R = decltype(racing)::value;
        for_each_wq(sl, [&](int i0, float4 v, unsigned valid) {
          const float g = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));  // NaN ignored
          if (g > rs16) {
            s = __fmul_rn(s, ex2(__fmul_rn(__fsub_rn(rs, g), kL2E)));
            rs = g;
            rs16 = __fadd_rn(g, 16.f);
          }
          s = __fadd_rn(s, __fadd_rn(__fadd_rn(term(v.x), term(v.y)), __fadd_rn(term(v.z), term(v.w))));
          const float gf = fix(g);
          quad_argmax(i0, v, gf, m, bi);
          const float4 xv = fix4(v);
          if constexpr (L) {
            // x >= xfl, x fixed: NaN ranks as -Inf, listed (as -Inf is)
            // only while xfl is -Inf; the group's max tests it first
            const float f = tl.w.xfl;
            if (gf >= f)
              tl.w.pend = valid & quad_ge(xv, f);
            tl.w.pbase = i0;
          }
          if constexpr (R) {
            if constexpr (kV)
              race.add4v(i0, v, valid, nws32);
            else
              race.add4(i0, v, -FLT_MAX);
          }
        }, [&](int i, float x) {
          if constexpr (!L) {
            if (top_reg && x >= tg && i < end) {
              if (top_insert(tk, rank_key(x, i))) {
                if (tk[kTopReg - 1]) {
                  const float t5 = ord2f((unsigned)(tk[kTopReg - 1] >> 32));
                  if (t5 > tg) {
                    tg = t5;
                    atomicMax(&sh.top_thr, f2ord(t5));
                  }
                }
              }
            }
          }
        }, [&] {
          if constexpr (R) race.drain(keep_all);
          if constexpr (L) {
            tl.group(sl.xs, lo);
          } else {
            if (top_reg) tg = fmaxf(tg, ord2f(*(volatile unsigned *)&sh.top_thr));
          }
        });
      };
      using T1 = std::true_type;
      using F1 = std::false_type;
      if (top_list) {
        if (plain) scan(T1{}, T1{});
        else scan(T1{}, F1{});
      } else {
        if (plain) scan(F1{}, T1{});
        else scan(F1{}, F1{});
      }
      // the sum as s * exp(m), as the reductions below take it
      // (m - 16 <= rs <= m)
      if (m > -INFINITY && m < INFINITY) s = __fmul_rn(s, ex2(__fmul_rn(__fsub_rn(rs, m), kL2E)));
      if (top_list) {  // each lane keeps its best of the warp's list
        for (int j = lane; j < tl.w.cnt; j += 32) {
          const int id = tl.w.ids[j];
          top_insert(tk, rank_key(fix(sl.xs[id - lo]), id));
        }
      }
      prof(20);
      // the block's n best: n rounds of a block max over the lists' heads
      // (keys are distinct: one thread owns the winner and pops it)
      auto block_rounds = [&]() {
        int got = 0;
        for (; got < p.n_top; got++) {
          const unsigned long long b = block_max_u(tk[0], sh);
          if (b == 0) break;
          if (tk[0] == b) {
#pragma unroll
            for (int j = 0; j < kTopReg - 1; j++) tk[j] = tk[j + 1];
            tk[kTopReg - 1] = 0;
          }
          if (tid == 0) sh.top_mine[got] = b;  // sent to block 0 in step 5, after a cluster barrier
        }
        if (tid == 0) sh.top_mine_cnt = got;
      };
      // With the lists, in the kernels of one 512-thread block a row
      // without the top-k lists, the same with one barrier: each warp's n
      // best (n rounds of a warp max over its lanes' heads; one lane owns
      // the winner and pops it, 0 once the warp has no more) go to the
      // start of its list space, which its lanes have read; then warp 0
      // takes the block's n best of those. H100, 256 rows: greedy + 5
      // logprobs 76.9 -> 73.7-73.9 us, temperature + 5 logprobs 101.6 ->
      // 98.5-99.0 (queued, bench/cuda/results/2026-11-26-h100-s12/ab-topn-3). In the other kernels the code alone slowed other modes
      // (top-k 50 + top-p ~6 us at 256 rows with the top-k lists; every
      // mode ~1-2 us at 64 rows in two-block clusters), so they keep the
      // rounds (session 12).
      if constexpr (C == 1 && T == 512 && !KF) {
        if (top_reg && top_list) {
          unsigned long long *wk = reinterpret_cast<unsigned long long *>(lst);
          __syncwarp();
          for (int r = 0; r < p.n_top; r++) {
            unsigned long long b = tk[0];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
              const unsigned long long t = __shfl_xor_sync(0xffffffffu, b, o);
              b = t > b ? t : b;
            }
            if (b != 0 && tk[0] == b) {
#pragma unroll
              for (int j = 0; j < kTopReg - 1; j++) tk[j] = tk[j + 1];
              tk[kTopReg - 1] = 0;
            }
            if (lane == 0) wk[r] = b;
          }
          __syncthreads();
          if (wid == 0) {
            // warp w's keys at lst + w * capw (ints) from warp 0's lst
            const int nt = p.n_top;
            const int *base = lst;
            int got = 0;
            warp_best_keys<kTopReg>(
                nwarps() * nt,
                [&](int j) {
                  return *reinterpret_cast<const unsigned long long *>(base + (j / nt) * capw + 2 * (j % nt));
                },
                [&](int r, unsigned long long k) {
                  if (r < nt) {
                    if (lane == 0) sh.top_mine[r] = k;  // sent to block 0 in step 5
                    got = r + 1;
                  }
                });
            if (lane == 0) sh.top_mine_cnt = got;
          }
        } else if (top_reg) {
          block_rounds();
        }
      } else {
        if (top_reg) block_rounds();
      }
      prof(21);
    } else if (plain) {  // straight-line code a group of four: the hashes overlap
      for_each_wq(sl, [&](int i0, float4 v, unsigned valid) {
        quad_argmax(i0, v, quad_max(v), m, bi);
        if constexpr (kV)
          race.add4v(i0, v, valid, nws32);
        else
          race.add4(i0, v, -FLT_MAX);
      }, [](int, float) {}, [&] { race.drain(keep_all); });
    } else if (mp) {
      for_each_wq(sl, [&](int i0, float4 v, unsigned) {
        quad_argmax(i0, v, quad_max(v), m, bi);
        // -Inf and NaN are never listed (xfl starts at -FLT_MAX)
        const float f = ml.w.xfl;
        ml.w.pend = quad_ge(v, f);
        ml.w.pbase = i0;
      }, [](int, float) {}, [&] { ml.group(m, sl.xs, lo); });
      if (ml.over && lane == 0) sh.mp_over = 1;  // read after the barrier below
    } else if (kf) {
      if constexpr (KF) {
        const ArgMax a = kf_scan(sl, lst, capw, p.top_k, sh);
        m = a.m;
        bi = a.i;
      }
    } else if (tpf) {
      if constexpr (TP) {
        const ArgMax a = tp_scan<!KF>(sl, p.noise_key, ws, race.bid, tp_pools, tp_qh, tp_ovf, sh);
        m = a.m;
        bi = a.i;
      }
    } else {
      for_each_wq(sl, [&](int i0, float4 v, unsigned) { quad_argmax(i0, v, quad_max(v), m, bi); },
                  [](int, float) {}, [] {});
    }
    if (plain) race.drain(keep_all, true);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
      const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
      const int b2 = __shfl_xor_sync(0xffffffffu, bi, o);
      const float M = fmaxf(m, m2);
      if (want_lp && M > -INFINITY && M < INFINITY)
        s = (m == -INFINITY ? 0.f : s * __expf(m - M)) + (m2 == -INFINITY ? 0.f : s2 * __expf(m2 - M));
      if (m2 > m || (m2 == m && b2 < bi)) bi = b2;
      m = M;
    }
    if (lane == 0) {
      sh.red_m[wid] = m;
      sh.red_s[wid] = s;
      sh.red_i[wid] = bi;
    }
    __syncthreads();
    if (tid == 0) {
      float bm = -INFINITY, bs = 0.f;
      int bb = INT_MAX;
      for (int i = 0; i < nwarps(); i++) {
        const float x = sh.red_m[i];
        if (x > bm || (x == bm && sh.red_i[i] < bb)) {
          bm = x;
          bb = sh.red_i[i];
        }
      }
      if (want_lp && bm > -INFINITY && bm < INFINITY)
        for (int i = 0; i < nwarps(); i++)
          if (sh.red_m[i] > -INFINITY) bs += sh.red_s[i] * __expf(sh.red_m[i] - bm);
      sh.x.m = bm;
      sh.x.s = bs;
      sh.x.best = bb;
    }
    prof(22);
  }
  Cluster<C>::sync();
  prof(23);
  if (tid == 0) {
    float pm[kMaxCluster], ps[kMaxCluster];
    int pb[kMaxCluster];
    for (int r = 0; r < C; r++) {
      const Xchg *x = Cluster<C>::peer(&sh.x, r);
      pm[r] = x->m;
      ps[r] = x->s;
      pb[r] = x->best;
    }
    float bm = -INFINITY;
    int bb = INT_MAX;
    for (int r = 0; r < C; r++) {
      if (pm[r] > bm || (pm[r] == bm && pb[r] < bb)) {
        bm = pm[r];
        bb = pb[r];
      }
    }
    float lz = 0.f;
    if (want_lp && bb != INT_MAX && bm < INFINITY) {
      double sum = 0;
      for (int r = 0; r < C; r++)
        if (pm[r] > -INFINITY) sum += (double)ps[r] * exp((double)pm[r] - bm);
      lz = (float)((double)bm + log(sum));
    }
    // a top-p row's tp_scan gave its maximum's group (tp_resolve)
    if constexpr (TP)
      if (tpf && bm == INFINITY && bb != INT_MAX) bb = tp_resolve(l, V, bb, bm);
    sh.f_max = bm;
    sh.i_best = bb;
    sh.f_logz = lz;
    if constexpr (KF) {
      // kover: 0 in every block of a top-k row whose lists held (kf_scan)
      int ko = 0;
      for (int r = 0; r < C; r++) ko |= *Cluster<C>::peer(&sh.kover, r);
      sh.k_fast = ko == 0;
    }
  }
  __syncthreads();
  prof(3);
  const float maxl = sh.f_max;
  int best = sh.i_best;  // for a top-p row, its maximum's group until tp_resolve
  if (best == INT_MAX || maxl == INFINITY) {
    if (rank == 0 && tid == 0) {
      res->status = best == INT_MAX ? kNoFinite : kPosInf;
      res->token = best == INT_MAX ? -1 : best;
      res->logprob = 0.f;
      res->n_top = 0;
    }
    Cluster<C>::sync();  // no block leaves while a peer may read its shared memory
    block_time(tp_flags, 2);
    return;  // the same decision in every block
  }
  const float logz = sh.f_logz;

  bool kfast = false;
  if constexpr (KF) kfast = sh.k_fast;
  bool tp_done = false;  // block-uniform
  if constexpr (TP) {
    if (tpf) {
      // the pools are free once tp_scan has merged them: the weighing's sums
      const unsigned long long w = tp_finish(sl, l, maxl, ws, p.top_p, tp_qh, tp_ovf, tp_pools, sh);
      tp_done = w != 0 && !(tp_flags & TK_SAMPLE_TOPP_FAST_FALLBACK);
      if (tid == 0) {
        atomicAdd(&g_tp_counts[tp_done ? 0 : 1], 1ull);
        // the cut passes' race starts from its own bound: tp_scan's is
        // the 7th best key over every token, which the survivors' winner
        // may lie below when none of the 7 survives (the cut's barriers
        // publish this before the race reads it)
        sh.race_thr = f2ord(-INFINITY);
        if (tp_done) {  // this block's winner (C = 1: the row's)
          race.bk = ord2f((unsigned)(w >> 32));
          race.bi = key_id(w);
        } else {
          sh.i_best = tp_resolve(l, V, best, maxl);  // the cut passes start from it (read after their barriers)
        }
      }
    }
  }
  if (kfast) {
    // 3'. a top-k row from its lists (kf_finish)
    if constexpr (KF) {
      const ArgMax w = kf_finish<C>(sl, p.top_k, p.top_p, p.min_p, p.noise_key, maxl, ws, sh);
      race.bk = w.m;
      race.bi = w.i;
    }
  } else if (!plain && p.greedy == 0 && !tp_done) {
    // 3. top-k, then top-p within it: the survivors rank at or before limit
    unsigned long long limit = 0;
    prof(4);
    if (topk) limit = cut<C>(sl, maxl, ws, false, (double)p.top_k, 0, sh);
    if (topp) {
      const unsigned long long c = cut<C>(sl, maxl, ws, true, (double)p.top_p, limit, sh);
      if (c) limit = c;
    }
    prof(5);
    // the cut's exchanges read the histogram space the race's buffers take
    Cluster<C>::sync();
    if constexpr (TP)
      if (tpf) best = sh.i_best;  // tp_resolve's
    // 4. the race over the survivors (min-p included), its threshold
    // started at the key of the top token (always a survivor)
    {
      const float kb = __fadd_rn(__fmul_rn(maxl, ws), noise_of(noise_hash(p.noise_key, best), sh.logt));
      race.set_thr(kb);
      if (tid == 0 && best >= lo && best < lo + n) {  // the block holding it starts with it
        race.bk = kb;
        race.bi = best;
      }
    }
    const QRef qr = qref(maxl, ws);
    auto keep = [&](int i, float x) {
      int q;
      const float w = weight(x, qr, ws, sl.tab, q);
      return w > 0.f && w >= p.min_p && (limit == 0 || rank_key(x, i) >= limit);
    };
    // a logit floor under every survivor (the cut token's logit; min-p's
    // bound, widened): below it a token needs no hash
    float xfloor = limit ? ord2f((unsigned)(limit >> 32)) : -INFINITY;
    if (p.min_p > 0.f)
      xfloor = fmaxf(xfloor, q_window(maxl, ws, minp_q(p.min_p), 0).x);
    if (mp && !sh.mp_over) {  // the listed ids only (mp_over is block-uniform)
      race.bid = ml.w.ids;
      race.cnt = ml.w.cnt;
      while (race.cnt >= 32) race.flush(32, keep);
      if (race.cnt > 0) race.flush(race.cnt, keep);
    } else {
      const float fl = fmaxf(xfloor, -FLT_MAX);
      for_each_wq(sl, [&](int i0, float4 v, unsigned) { race.add4(i0, v, fl); },
                  [](int, float) {}, [&] { race.drain(keep); });
      race.drain(keep, true);
    }
    prof(6);
  }
  if (p.greedy == 0) {
    // this block's winner, into block 0: as a rank key of (race key, id)
    // the largest is the winner (ties to the lower id; -0 made +0 so
    // that equal keys compare equal); 0 is "none"
    const unsigned long long w =
        block_max_u(race.bi == INT_MAX ? 0ull : rank_key(__fadd_rn(race.bk, 0.f), race.bi), sh);
    if (tid == 0) *Cluster<C>::peer(&sh.race_in[rank], 0) = w;
  }

  // 5. top-n logprobs of the penalised logits: each block takes its
  // slice's n best keys (n rounds of a block max, each a pass over the
  // slice unless the max pass kept them), block 0 merges them
  int ntop = 0;
  if (p.n_top > 0 && p.n_top <= kTopReg && tid == 0) {  // gathered in the max pass
    const int got = sh.top_mine_cnt;
    for (int j = 0; j < got; j++) *Cluster<C>::peer(&sh.top_in[rank * TK_SAMPLE_MAX_TOP + j], 0) = sh.top_mine[j];
    *Cluster<C>::peer(&sh.top_cnt[rank], 0) = got;
  }
  if (p.n_top > kTopReg) {
    const int want = min(p.n_top, TK_SAMPLE_MAX_TOP);
    unsigned long long prev = ~0ull;
    int got = 0;
    for (; got < want; got++) {
      unsigned long long b = 0;
      for_each(sl, [&](int i, float x) {
        const unsigned long long k = rank_key(x, i);
        if (k < prev && k > b) b = k;
      });
      b = block_max_u(b, sh);
      if (b == 0) break;
      if (tid == 0) *Cluster<C>::peer(&sh.top_in[rank * TK_SAMPLE_MAX_TOP + got], 0) = b;
      prev = b;
    }
    if (tid == 0) *Cluster<C>::peer(&sh.top_cnt[rank], 0) = got;
  }
  // no block leaves while a peer may read its shared memory; block 0 has
  // every block's token and top-n keys after it
  prof(8);
  Cluster<C>::sync();
  prof(9);
  if (rank != 0) {
    block_time(tp_flags, 2);
    return;
  }
  int token = best;
  if (p.greedy == 0) {
    unsigned long long w = 0;
    for (int r = 0; r < C; r++) w = sh.race_in[r] > w ? sh.race_in[r] : w;
    token = w ? key_id(w) : -1;  // never -1: the top token is a survivor (cut rows start with it)
  }
  if (p.n_top > 0) {
    int total = 0;
    for (int r = 0; r < C; r++) {
      const int c = sh.top_cnt[r];
      for (int j = tid; j < c; j += (int)blockDim.x) sl.gbuf[total + j] = sh.top_in[r * TK_SAMPLE_MAX_TOP + j];
      total += c;
    }
    __syncthreads();
    bitonic_desc(sl.gbuf, total);
    ntop = min(total, min(p.n_top, TK_SAMPLE_MAX_TOP));
    if (tid < ntop) {
      const int id = key_id(sl.gbuf[tid]);
      res->top_ids[tid] = id;
      res->top_lp[tid] = fix(l[id]) - logz;
    }
  }
  if (tid == 0) {
    res->token = token;
    res->logprob = want_lp && token >= 0 ? fix(l[token]) - logz : 0.f;
    res->n_top = ntop;
    res->status = token >= 0 ? kOK : kNoFinite;
  }
  block_time(tp_flags, 2);
}

// fixed_smem is the dynamic shared memory besides the staged slice.
size_t fixed_smem(int C) {
  size_t b = (size_t)kQSize * 4;
  b += hist1_bytes() + own_bytes(C);
  b += (size_t)kLocalCap * 8 + (size_t)kGatherCap * 8;
  return b;
}

template <int C, int T = (C == 2 ? 1024 : 512), bool KF = false, bool TP = false>
int launch(float *logits, int rows, int V, const tk_sample_params *params,
           const int32_t *hist_ids, const int32_t *hist_counts, tk_sample_result *results,
           int max_smem, int flags, cudaStream_t s, bool tp_ring = true) {
  static_assert((T / 32) * kRaceWarpBytes <= hist1_bytes() + own_bytes(C) + kLocalCap * 8,
                "the race's buffers must fit the histogram space");
  static_assert(!TP || (C == 1 && (T == 512 || T == 1024)), "the one-read top-p is for one block a row");
  static_assert(!TP || (size_t)(T / 32) * kRaceWarpBytes + (size_t)kQWin * 2 >=
                           hist1_bytes() + own_bytes(C) + kLocalCap * 8 + kGatherCap * 8,
                "the top-p kernel's regions must lie within its histogram's end");
  static_assert(!TP || T * 8 <= T / 32 * 64 * 8, "tp_finish's sums must fit the pools");
  static bool configured = false;
  if (!configured) {
    TK_CHECK(cudaFuncSetAttribute(sample_kernel<C, T, KF, TP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  max_smem));
    // the largest shared-memory carveout, so that two 512-thread blocks
    // (~100 KB each) can share an SM whatever the driver's default (on the
    // H100 it changed no timing: the step from 132 rows, 61 us, to 133
    // rows, 90 us, is an SM running two rows 1.5x as long as one, not a
    // second wave)
    TK_CHECK(cudaFuncSetAttribute(sample_kernel<C, T, KF, TP>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  (int)cudaSharedmemCarveoutMaxShared));
    if (C > 8)
      TK_CHECK(cudaFuncSetAttribute(sample_kernel<C, T, KF, TP>,
                                    cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    configured = true;
  }
  const int S = slice_len(V, C);
  const size_t fixed = fixed_smem(C);
  // the slice staged, else read in place; the copy ring where it fits
  // (not on GPUs with ~100 KB a block); the top-p kernel always has the
  // ring (tk_sample launches it where tp_smem fits)
  const int staged = !TP && fixed + stage_bytes(S) <= (size_t)max_smem;
  const int ringed = TP ? tp_ring : (!staged && fixed + ring_bytes(T) <= (size_t)max_smem);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)rows * C);
  cfg.blockDim = dim3(T);
  cfg.dynamicSmemBytes = TP ? tp_smem(T, tp_ring) : fixed + (staged ? stage_bytes(S) : ringed ? ring_bytes(T) : 0);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = C;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = C > 1 ? 1 : 0;
  cudaError_t e = cudaLaunchKernelEx(&cfg, sample_kernel<C, T, KF, TP>, logits, V, S, staged, ringed, flags, params,
                                     hist_ids, hist_counts, results);
  if (e != cudaSuccess) {
    cudaGetLastError();
    tk_note_call("sample_kernel");
    return (int)e;
  }
  if (flags & TK_SAMPLE_BLOCK_TIMES) g_blk_count = rows * C;
  return 0;
}

}  // namespace

extern "C" int tk_sample_phase_clocks(long long *out, int n) {
  if (n <= 0 || n > 32) return 20000;
  TK_CHECK(cudaMemcpyFromSymbol(out, g_prof, sizeof(long long) * n));
  return 0;
}

extern "C" int tk_sample_block_times(unsigned long long *out, int n, int *blocks) {
  if (out == nullptr || blocks == nullptr || n <= 0 || n > kBlkMax) return 20000;
  TK_CHECK(cudaMemcpyFromSymbol(out, g_blk, sizeof(unsigned long long) * 3 * n));
  *blocks = g_blk_count;
  return 0;
}

extern "C" int tk_sample_topp_counts(unsigned long long *out, int reset) {
  if (out == nullptr) return 20000;
  TK_CHECK(cudaMemcpyFromSymbol(out, g_tp_counts, sizeof(unsigned long long) * 2));
  if (reset) {
    const unsigned long long zero[2] = {0, 0};
    TK_CHECK(cudaMemcpyToSymbol(g_tp_counts, zero, sizeof(zero)));
  }
  return 0;
}

extern "C" int tk_sample_set_exp_table(const uint32_t *mantissas, int n) {
  if (n != kQSize || mantissas == nullptr) return 20000;
  TK_CHECK(cudaMemcpyToSymbol(g_exp_mant, mantissas, sizeof(unsigned) * kQSize));
  g_exp_table_set = true;
  return 0;
}

extern "C" int tk_sample_set_log_table(const float *tab, int n) {
  if (n != TK_SAMPLE_LOG_TABLE || tab == nullptr) return 20000;
  TK_CHECK(cudaMemcpyToSymbol(g_log_tab, tab, sizeof(float) * TK_SAMPLE_LOG_TABLE));
  g_log_table_set = true;
  return 0;
}

extern "C" int tk_sample(float *logits, int rows, int vocab, const tk_sample_params *params,
                         const int32_t *hist_ids, const int32_t *hist_counts,
                         tk_sample_result *results, int flags, tk_stream s) {
  if (rows <= 0 || vocab <= 0 || !g_exp_table_set || !g_log_table_set) return 20000;
  // rows that may cut their top k from lists get the kernel with that
  // path (KList); the others' kernel leaves it out, which keeps their
  // scans' code as it was (with it, greedy rows ran ~10% slower on H100)
  const bool kf = (flags & TK_SAMPLE_TOPK_LISTS) != 0;
  const bool tp = (flags & TK_SAMPLE_TOPP_FAST) != 0;
  // blocks per row, on Hopper: the most that keep every block of the batch
  // on the chip at once (a cluster of 8 over shared-memory slices up to 33
  // rows, two 1024-thread blocks a row reading half rows from global
  // memory, whose later passes then hit L2, up to 66 rows), else one
  // 1024-thread block a row. H100, 128,256 tokens: at 64 rows C=2 takes
  // 37.6 us for temperature and 93 us for top-p against 54 and 151 with
  // C=1; at 256 rows C=1 is fastest (bench/cuda/results/2026-11-26-h100-s4).
  // TOKAMAK_SAMPLE_CLUSTER (1, 2, 4, 8 or 16) forces one for comparisons.
  // Elsewhere one block a row.
  static int cluster = 0, max_smem = 0, forced = 0, sms = 0, c1_wide = 0, tp_shape = 0;
  if (cluster == 0) {
    int dev = 0, major = 0;
    TK_CHECK(cudaGetDevice(&dev));
    TK_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TK_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    max_smem -= 8192;  // room for the static shared memory
    int c = major >= 9 ? 8 : 1;
    if (const char *e = getenv("TOKAMAK_SAMPLE_CLUSTER"); e && major >= 9) {
      const int v = atoi(e);
      if (v == 1 || v == 2 || v == 4 || v == 8 || v == 16) forced = c = v;
    }
    TK_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    if (const char *e = getenv("TOKAMAK_SAMPLE_C1_THREADS"); e && atoi(e) == 1024) c1_wide = 1;
    if (const char *e = getenv("TOKAMAK_SAMPLE_TP_THREADS"); e && (atoi(e) == 512 || atoi(e) == 1024))
      tp_shape = atoi(e);
    cluster = c;
  }
  cudaStream_t st = TK_STREAM(s);
  int c = 1;
  // blocks of 8-block clusters an SM holds: two unless the staged slice
  // leaves room for one only (vocabularies over ~155k)
  const size_t s8 = fixed_smem(8) + stage_bytes(slice_len(vocab, 8)) + 8192;
  const long long per_sm = 2 * s8 <= (size_t)max_smem + 8192 ? 2 : 1;
  if (forced)
    c = forced;
  else if (cluster > 1 && (long long)rows * 8 <= per_sm * sms)
    c = 8;
  else if (cluster > 1 && (long long)rows * 2 <= sms)
    c = 2;  // one 1024-thread block an SM
  switch (c) {
    case 2: return launch<2>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
    case 4: return launch<4>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
    case 8:
      if (kf) return launch<8, 512, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
      return launch<8>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
    case 16: return launch<16>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
    default:
      if (c1_wide)
        return launch<1, 1024>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
      // rows that may cut top-p in one read get the kernel with that path
      // (tp_scan, tp_finish). While the rows fit the SMs one a row: 1,024
      // threads with the copy ring (~202 KB of shared memory), or 512 with
      // the top-k lists, which 1,024-thread blocks have no room for; above
      // that two rows an SM: 512 threads without the ring (~92 KB), since
      // one an SM runs the batch in two waves (H100, 256 rows: 126 us
      // against 158; 128 rows: 101 against 83; bench/cuda/results/
      // 2026-11-27-h100-s16). TOKAMAK_SAMPLE_TP_THREADS=512 or 1024 forces
      // a shape for comparisons.
      if (tp) {
        const bool two = tp_shape ? tp_shape == 512 : rows > sms;
        if (two && tp_smem(512, false) <= (size_t)max_smem) {
          if (kf)
            return launch<1, 512, true, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem,
                                              flags, st, false);
          return launch<1, 512, false, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem,
                                             flags, st, false);
        }
        if (kf && tp_smem(512) <= (size_t)max_smem)
          return launch<1, 512, true, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem,
                                            flags, st);
        if (!kf && tp_smem(1024) <= (size_t)max_smem)
          return launch<1, 1024, false, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem,
                                              flags, st);
      }
      if (kf) return launch<1, 512, true>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
      return launch<1>(logits, rows, vocab, params, hist_ids, hist_counts, results, max_smem, flags, st);
  }
}
