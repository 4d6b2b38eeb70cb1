// sample.cu: fused sampling of a whole batch of logit rows, with the
// semantics of engine/sample.Sample (the CPU reference): penalties,
// greedy, temperature, top-k, top-p, min-p, a per-row uniform value (the
// request's seeded stream, computed on the host), the chosen token's
// logprob and the top-n logprobs. It never sorts the vocabulary.
//
// Layout: logits [rows, V] f32, row-major (modified in place: penalties
// are written back). params/results: one tk_sample_params /
// tk_sample_result per row; hist_ids/hist_counts hold each row's penalty
// history (distinct token ids and their output counts) at
// [hist_off, hist_off + hist_len).
//
// One block of 1024 threads per row. Bound: reading the row, 4 B per
// logit per pass. A greedy or pure-temperature row takes one pass (max)
// or two (max, then the draw). Top-k / top-p / top-n follow the CPU
// reference's plan: weights w = exp((l - max)/T) are monotone in the
// logit, so a histogram over w's top 16 bits (a bucket spans a weight
// ratio under 1.008) finds the single bucket holding the cut in one pass;
// only that bucket's members are collected (one pass) and sorted in
// shared memory. If a bucket has more members than fit, the cut is found
// by bisection over the 64-bit rank key instead (up to 64 passes; only
// for nearly flat distributions). The draw is an inverse CDF in token-id
// order: one pass of per-warp segment sums, then one warp rescans one
// segment. Masses are summed in float64, as the reference does, so the
// two agree except for summation order on an exact boundary. Every float
// op that feeds a weight uses explicit round-to-nearest intrinsics (no
// FMA contraction) so w is bit-identical to the reference's expNeg.
#include <limits.h>
#include <math.h>

#include "common.cuh"

namespace {

constexpr int kThreads = 1024;
constexpr int kNW = kThreads / 32;
constexpr int kBuckets = 0x3f80 + 1;  // every float in [0, 1] by its top 16 bits
constexpr int kPerThread = (kBuckets + kThreads - 1) / kThreads;
constexpr int kCap = 8192;  // members sorted in shared memory (power of two)
constexpr float kFix = 1099511627776.0f;  // 2^40: fixed-point masses in the histogram
constexpr double kInvFix = 1.0 / 1099511627776.0;

constexpr size_t kHistBytes = ((size_t)kBuckets * 8 + 15) & ~(size_t)15;
constexpr size_t kBigSmem = kHistBytes + (size_t)kCap * 8;
constexpr size_t kSmallSmem = 16;  // greedy and plain temperature rows need none

// Status codes written into tk_sample_result.status.
constexpr int kOK = 0;
constexpr int kNoFinite = 1;
constexpr int kPosInf = 2;
constexpr int kNoHistogram = 3;  // launched without the shared memory the row needs

// fix maps NaN to -Inf (the reference does) and -0 to +0 (they compare
// equal, so they must rank by id alone).
__device__ __forceinline__ float fix(float x) {
  if (x != x) return -INFINITY;
  return x == 0.f ? 0.f : x;
}

__device__ __forceinline__ float ld_logit(const float *l, int i) { return fix(l[i]); }

// for_each_logit calls f(i, logit) for every id of the row, each thread a
// strided share, with 16-byte loads when the row allows them.
template <typename F>
__device__ __forceinline__ void for_each_logit(const float *l, int V, F f) {
  if ((V & 3) == 0) {
    const float4 *l4 = reinterpret_cast<const float4 *>(l);
#pragma unroll 2
    for (int j = threadIdx.x; j < V / 4; j += kThreads) {
      float4 v = l4[j];
      f(4 * j, fix(v.x));
      f(4 * j + 1, fix(v.y));
      f(4 * j + 2, fix(v.z));
      f(4 * j + 3, fix(v.w));
    }
  } else {
    for (int i = threadIdx.x; i < V; i += kThreads) f(i, ld_logit(l, i));
  }
}

// exp_neg is engine/sample's expNeg, op for op.
__device__ __forceinline__ float exp_neg(float x) {
  if (x < -0x1.5d51ecp+06f) return 0.f;  // -87.33, also -Inf
  int k = (int)__fsub_rn(__fmul_rn(x, 0x1.715476p+00f), 0.5f);
  float kf = (float)k;
  float r = __fsub_rn(__fsub_rn(x, __fmul_rn(kf, 0x1.62e4p-01f)), __fmul_rn(kf, 0x1.7f7d1cp-20f));
  float p = __fadd_rn(0x1.111112p-07f, __fmul_rn(r, 0x1.6c16c2p-10f));
  p = __fadd_rn(0x1.555556p-05f, __fmul_rn(r, p));
  p = __fadd_rn(0x1.555556p-03f, __fmul_rn(r, p));
  p = __fadd_rn(0.5f, __fmul_rn(r, p));
  p = __fadd_rn(1.f, __fmul_rn(r, p));
  p = __fadd_rn(1.f, __fmul_rn(r, p));
  return __fmul_rn(p, __int_as_float((k + 127) << 23));
}

__device__ __forceinline__ float weight(float x, float maxl, float inv_t) {
  return exp_neg(__fmul_rn(__fsub_rn(x, maxl), inv_t));
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

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide reductions; red is shared scratch of kNW entries; every
// thread gets the result.
__device__ double block_sum_d(double v, double *red) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  double t = 0;
  for (int i = 0; i < kNW; i++) t += red[i];  // fixed order: same total everywhere
  return t;
}

__device__ unsigned long long block_min_u64(unsigned long long v, unsigned long long *red) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    unsigned long long t = __shfl_xor_sync(0xffffffffu, v, o);
    v = t < v ? t : v;
  }
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  unsigned long long m = red[0];
  for (int i = 1; i < kNW; i++) m = red[i] < m ? red[i] : m;
  return m;
}

struct Shared {
  double red_d[kNW];
  unsigned long long red_u[kNW];
  float red_m[kNW];
  float red_s[kNW];
  int red_i[kNW];
  double seg[kNW];
  int seg_last[kNW];
  int cut_bucket;
  unsigned long long acc_above;
  unsigned long long cut_key;
  double target;
  int count;
  int pick;
  int token;
  double seg_base;
};

// warp_scan_d returns the inclusive prefix sum of v over the lanes of a
// full warp and sets *ex to the exclusive one.
__device__ __forceinline__ double warp_scan_d(double v, double *ex) {
  const int lane = threadIdx.x & 31;
  double inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    double t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  double e = __shfl_up_sync(0xffffffffu, inc, 1);
  *ex = lane == 0 ? 0.0 : e;
  return inc;
}

// block_excl_scan_d returns the sum of v over the threads before this one
// (in thread order); red is shared scratch of kNW entries.
__device__ double block_excl_scan_d(double v, double *red) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  double ex;
  double inc = warp_scan_d(v, &ex);
  __syncthreads();
  if (lane == 31) red[w] = inc;
  __syncthreads();
  double off = 0;
  for (int i = 0; i < w; i++) off += red[i];
  return off + ex;
}

// key_logit recovers the logit from a rank key.
__device__ __forceinline__ float key_logit(unsigned long long k) {
  unsigned e = (unsigned)(k >> 32);
  return __uint_as_float((e & 0x80000000u) ? (e & 0x7fffffffu) : ~e);
}

// Candidate filter of a cut: tokens with w > 0 in bucket b (b < 0: every
// token, weight or not) ranking at or before limit (0: no limit).
struct Filter {
  int bucket;
  unsigned long long limit;
};

__device__ __forceinline__ bool member(const Filter &f, float w, unsigned long long key) {
  if (key < f.limit) return false;
  if (f.bucket < 0) return true;
  return w > 0.f && (int)(__float_as_uint(w) >> 16) == f.bucket;
}

// bisect returns the key of the member at which the rank-order prefix of
// members (each counting 1, or its weight when by_mass) reaches need; the
// last member when the members never reach it. Up to 64 passes: the
// fallback for a bucket too full to sort in shared memory.
__device__ unsigned long long bisect(const float *l, int V, float maxl, float inv_t, Filter f,
                                     bool by_mass, double need, Shared &sh) {
  double tot = 0;
  unsigned long long mn = ~0ull;
  for_each_logit(l, V, [&](int i, float x) {
    float w = weight(x, maxl, inv_t);
    unsigned long long k = rank_key(x, i);
    if (!member(f, w, k)) return;
    tot += by_mass ? (double)w : 1.0;
    mn = k < mn ? k : mn;
  });
  tot = block_sum_d(tot, sh.red_d);
  mn = block_min_u64(mn, sh.red_u);
  if (tot < need) return mn;
  unsigned long long lo = mn, hi = ~0ull;  // invariant: S(lo) >= need
  while (lo < hi) {
    unsigned long long mid = lo + (hi - lo) / 2 + 1;
    double s = 0;
    for_each_logit(l, V, [&](int i, float x) {
      float w = weight(x, maxl, inv_t);
      unsigned long long k = rank_key(x, i);
      if (k >= mid && member(f, w, k)) s += by_mass ? (double)w : 1.0;
    });
    s = block_sum_d(s, sh.red_d);
    if (s >= need)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// bitonic_desc sorts n keys (padded with 0 to a power of two) descending.
__device__ void bitonic_desc(unsigned long long *s, int n) {
  int p = 1;
  while (p < n) p <<= 1;
  for (int i = n + threadIdx.x; i < p; i += kThreads) s[i] = 0;
  __syncthreads();
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += kThreads) {
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

// collect stores the keys of the members of f in mem (up to cap; the true
// count lands in sh.count), with one shared atomic per warp and call.
__device__ void collect(const float *l, int V, float maxl, float inv_t, Filter f,
                        unsigned long long *mem, int cap, Shared &sh) {
  if (threadIdx.x == 0) sh.count = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  for_each_logit(l, V, [&](int i, float x) {
    float w = weight(x, maxl, inv_t);
    unsigned long long k = rank_key(x, i);
    bool in = member(f, w, k);
    unsigned am = __activemask();
    unsigned hit = __ballot_sync(am, in);
    if (hit == 0) return;
    int leader = __ffs(am) - 1;
    int start = 0;
    if (lane == leader) start = atomicAdd(&sh.count, __popc(hit));
    start = __shfl_sync(am, start, leader);
    if (in) {
      int pos = start + __popc(hit & ((1u << lane) - 1));
      if (pos < cap) mem[pos] = k;
    }
  });
  __syncthreads();
}

// cut finds the token at which a rank-order prefix of the tokens ranking
// at or before limit (0: all) reaches a target: a count (by_mass false,
// target = goal) or goal times those tokens' total weight. It returns
// that token's rank key, or 0 when the set never reaches the target (no
// cut). Tokens of weight 0 are left out: they are never drawn, and a cut
// among them keeps every positive weight, as no cut does.
__device__ unsigned long long cut(const float *l, int V, float maxl, float inv_t, bool by_mass,
                                  double goal, unsigned long long limit,
                                  unsigned long long *hist, unsigned long long *mem, Shared &sh) {
  for (int b = threadIdx.x; b < kBuckets; b += kThreads) hist[b] = 0;
  if (threadIdx.x == 0) sh.cut_bucket = -1;
  __syncthreads();
  double mass = 0;
  for_each_logit(l, V, [&](int i, float x) {
    float w = weight(x, maxl, inv_t);
    if (w == 0.f) return;
    if (limit && rank_key(x, i) < limit) return;
    mass += (double)w;
    unsigned long long v = by_mass ? __float2ull_rn(w * kFix) : 1ull;
    atomicAdd(&hist[__float_as_uint(w) >> 16], v);
  });
  const double target = by_mass ? goal * block_sum_d(mass, sh.red_d) : goal;
  __syncthreads();
  // suffix sums: thread t owns buckets [t*kPerThread, (t+1)*kPerThread)
  const int b0 = (int)threadIdx.x * kPerThread;
  const int b1 = min(b0 + kPerThread, kBuckets);
  unsigned long long mine = 0;
  for (int b = b0; b < b1; b++) mine += hist[b];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  unsigned long long incl = mine;  // over lanes >= this one
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    unsigned long long t = __shfl_down_sync(0xffffffffu, incl, o);
    if (lane + o < 32) incl += t;
  }
  if (lane == 0) sh.red_u[w] = incl;  // warp total
  __syncthreads();
  unsigned long long above = incl - mine;  // integer: exact
  for (int i = w + 1; i < kNW; i++) above += sh.red_u[i];
  auto reached = [&](unsigned long long s) {
    return (by_mass ? (double)s * kInvFix : (double)s) >= target;
  };
  if (!reached(above)) {
    unsigned long long acc = above;
    for (int b = b1 - 1; b >= b0; b--) {
      unsigned long long next = acc + hist[b];
      if (reached(next)) {
        sh.cut_bucket = b;
        sh.acc_above = acc;
        break;
      }
      acc = next;
    }
  }
  __syncthreads();
  const int bucket = sh.cut_bucket;
  if (bucket < 0) return 0;
  const double acc0 = by_mass ? (double)sh.acc_above * kInvFix : (double)sh.acc_above;
  const Filter f{bucket, limit};
  collect(l, V, maxl, inv_t, f, mem, kCap, sh);
  const int n = sh.count;
  if (n > kCap) return bisect(l, V, maxl, inv_t, f, by_mass, target - acc0, sh);
  bitonic_desc(mem, n);
  // the first member (rank order) where the running total reaches target:
  // each thread a contiguous run of members, runs offset by a block scan
  const int per = (n + kThreads - 1) / kThreads;
  const int j0 = min(n, (int)threadIdx.x * per), j1 = min(n, j0 + per);
  auto val = [&](int j) {
    return by_mass ? (double)weight(key_logit(mem[j]), maxl, inv_t) : 1.0;
  };
  double run = 0;
  for (int j = j0; j < j1; j++) run += val(j);
  if (threadIdx.x == 0) sh.pick = INT_MAX;
  double acc = acc0 + block_excl_scan_d(run, sh.red_d);
  for (int j = j0; j < j1; j++) {
    acc += val(j);
    if (acc >= target) {
      atomicMin(&sh.pick, j);
      break;
    }
  }
  __syncthreads();
  const int pick = sh.pick;
  const unsigned long long key = mem[pick == INT_MAX ? n - 1 : pick];
  __syncthreads();  // mem may be reused by the caller
  return key;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(
    float *logits, int V, const tk_sample_params *params, const int32_t *hist_ids,
    const int32_t *hist_counts, tk_sample_result *results, int big) {
  extern __shared__ __align__(16) unsigned long long dyn[];
  __shared__ Shared sh;
  const int row = blockIdx.x;
  const tk_sample_params p = params[row];
  float *l = logits + (size_t)row * V;
  tk_sample_result *res = results + row;
  const int tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;

  // 1. penalties, in place (history ids are distinct: no two threads
  // write one logit)
  for (int j = tid; j < p.hist_len; j += kThreads) {
    int id = hist_ids[p.hist_off + j];
    int c = hist_counts[p.hist_off + j];
    float x = ld_logit(l, id);
    if (p.repetition != 1.f) x = x > 0.f ? __fdiv_rn(x, p.repetition) : __fmul_rn(x, p.repetition);
    if (c > 0) x = __fsub_rn(x, __fadd_rn(__fmul_rn(p.frequency, (float)c), p.presence));
    l[id] = x;
  }
  __syncthreads();

  // 2. max (ties to the lowest id) and, for logprobs, sum exp(l - max)
  const bool want_lp = p.want_logprobs != 0 || p.n_top > 0;
  float m = -INFINITY, s = 0.f;
  int bi = INT_MAX;
  for_each_logit(l, V, [&](int i, float x) {
    if (x > m) {
      if (want_lp) s = (m == -INFINITY ? 0.f : s * __expf(m - x)) + 1.f;
      m = x;
      bi = i;
    } else if (want_lp && x > -INFINITY) {
      s += __expf(x - m);
    }
  });
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    int b2 = __shfl_xor_sync(0xffffffffu, bi, o);
    float M = fmaxf(m, m2);
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
  float maxl = -INFINITY;
  int best = INT_MAX;
  for (int i = 0; i < kNW; i++) {
    float x = sh.red_m[i];
    if (x > maxl || (x == maxl && sh.red_i[i] < best)) {
      maxl = x;
      best = sh.red_i[i];
    }
  }
  if (best == INT_MAX || maxl == INFINITY) {
    if (tid == 0) {
      res->status = best == INT_MAX ? kNoFinite : kPosInf;
      res->token = best == INT_MAX ? -1 : best;
      res->logprob = 0.f;
      res->n_top = 0;
    }
    return;  // the same decision in every thread
  }
  double sum = 0;
  if (want_lp)
    for (int i = 0; i < kNW; i++)
      if (sh.red_m[i] > -INFINITY) sum += (double)sh.red_s[i] * exp((double)sh.red_m[i] - maxl);
  const float logz = want_lp ? (float)((double)maxl + log(sum)) : 0.f;

  unsigned long long *hist = dyn;
  unsigned long long *mem = big ? dyn + kHistBytes / 8 : dyn;
  const bool topk = p.top_k > 0 && p.top_k < V;
  const bool topp = p.top_p > 0.f && p.top_p < 1.f;
  if (!big && ((p.greedy == 0 && (topk || topp)) || p.n_top > 0)) {
    if (tid == 0) res->status = kNoHistogram;
    return;
  }
  int token = best;
  if (p.greedy == 0) {
    const float inv_t = p.inv_temp;
    // 3. top-k, then top-p within it: the survivors rank at or before limit
    unsigned long long limit = 0;
    if (topk) limit = cut(l, V, maxl, inv_t, false, (double)p.top_k, 0, hist, mem, sh);
    if (topp) {
      unsigned long long c = cut(l, V, maxl, inv_t, true, (double)p.top_p, limit, hist, mem, sh);
      if (c) limit = c;
    }
    // 4. inverse CDF in id order over the survivors (min-p included):
    // warp wid owns ids [lo, hi), 128-aligned, 4 consecutive ids a lane
    const int seg = (((V + kNW - 1) / kNW) + 127) & ~127;
    const int lo = min(V, wid * seg), hi = min(V, lo + seg);
    auto keep_w = [&](int i, float x) -> double {
      float w = weight(x, maxl, inv_t);
      if (w > 0.f && w >= p.min_p && (limit == 0 || rank_key(x, i) >= limit)) return (double)w;
      return 0.0;
    };
    auto quad = [&](int i, double *v) {  // weights of ids i..i+3 (0 past hi)
      if ((V & 3) == 0 && i + 3 < hi) {
        float4 q = *reinterpret_cast<const float4 *>(l + i);
        v[0] = keep_w(i, fix(q.x));
        v[1] = keep_w(i + 1, fix(q.y));
        v[2] = keep_w(i + 2, fix(q.z));
        v[3] = keep_w(i + 3, fix(q.w));
      } else {
#pragma unroll
        for (int e = 0; e < 4; e++) v[e] = i + e < hi ? keep_w(i + e, ld_logit(l, i + e)) : 0.0;
      }
    };
    double part = 0;
    int last = -1;
    for (int i0 = lo; i0 < hi; i0 += 128) {
      int i = i0 + 4 * lane;
      double v[4];
      quad(i, v);
#pragma unroll
      for (int e = 0; e < 4; e++) {
        part += v[e];
        if (v[e] > 0) last = i + e;
      }
    }
    part = warp_sum_d(part);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(0xffffffffu, last, o));
    if (lane == 0) {
      sh.seg[wid] = part;
      sh.seg_last[wid] = last;
    }
    __syncthreads();
    if (tid == 0) {
      double kept = 0;
      int lastk = -1;
      for (int i = 0; i < kNW; i++) {
        kept += sh.seg[i];
        if (sh.seg_last[i] >= 0) lastk = sh.seg_last[i];
      }
      const double target = (double)p.u * kept;
      double cum = 0;
      int pick = -1;
      for (int i = 0; i < kNW; i++) {
        if (sh.seg[i] > 0 && cum + sh.seg[i] > target) {
          pick = i;
          break;
        }
        cum += sh.seg[i];
      }
      sh.pick = pick;
      sh.seg_base = cum;
      sh.target = target;
      sh.token = lastk;
    }
    __syncthreads();
    const int pick = sh.pick;
    if (pick >= 0 && wid == pick) {
      double base = sh.seg_base;
      const double target = sh.target;
      int found = -1;
      for (int i0 = lo; i0 < hi && found < 0; i0 += 128) {
        int i = i0 + 4 * lane;
        double v[4];
        quad(i, v);
        double c;
        const double inc = warp_scan_d((v[0] + v[1]) + (v[2] + v[3]), &c);
        c += base;
        int e_hit = -1;
#pragma unroll
        for (int e = 0; e < 4; e++) {
          if (e_hit < 0 && v[e] > 0) {
            c += v[e];
            if (c > target) e_hit = e;
          }
        }
        unsigned hit = __ballot_sync(0xffffffffu, e_hit >= 0);
        if (hit) {
          int src = __ffs(hit) - 1;
          int e = __shfl_sync(0xffffffffu, e_hit, src);
          found = i0 + 4 * src + e;
        }
        base += __shfl_sync(0xffffffffu, inc, 31);
      }
      if (lane == 0) sh.token = found >= 0 ? found : sh.seg_last[pick];
    }
    __syncthreads();
    token = sh.token;
  }

  // 5. logprobs of the penalised logits (before temperature)
  int ntop = 0;
  if (p.n_top > 0) {
    // the n-th ranked token, by a count cut over the weights at T = 1
    unsigned long long c = 0;
    c = cut(l, V, maxl, 1.f, false, (double)p.n_top, 0, hist, mem, sh);
    if (c == 0) c = bisect(l, V, maxl, 1.f, Filter{-1, 0}, false, (double)p.n_top, sh);
    collect(l, V, maxl, 1.f, Filter{-1, c}, mem, 32, sh);
    ntop = min(sh.count, min(p.n_top, TK_SAMPLE_MAX_TOP));
    bitonic_desc(mem, ntop);
    if (tid < ntop) {
      int id = key_id(mem[tid]);
      res->top_ids[tid] = id;
      res->top_lp[tid] = ld_logit(l, id) - logz;
    }
  }
  if (tid == 0) {
    res->token = token;
    res->logprob = want_lp ? ld_logit(l, token) - logz : 0.f;
    res->n_top = ntop;
    res->status = token >= 0 ? kOK : kNoFinite;
  }
}

}  // namespace

extern "C" int tk_sample(float *logits, int rows, int vocab, const tk_sample_params *params,
                         const int32_t *hist_ids, const int32_t *hist_counts,
                         tk_sample_result *results, int big, tk_stream s) {
  if (rows <= 0 || vocab <= 0) return 20000;
  const size_t smem = big ? kBigSmem : kSmallSmem;
  if (big) {
    static bool configured = false;
    if (!configured) {
      TK_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)kBigSmem));
      configured = true;
    }
  }
  sample_kernel<<<rows, kThreads, smem, TK_STREAM(s)>>>(logits, vocab, params, hist_ids,
                                                        hist_counts, results, big);
  TK_LAUNCHED("sample_kernel");
}
