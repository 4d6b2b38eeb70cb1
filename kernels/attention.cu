// attention.cu: causal paged attention for a varlen batch (prefill rows and
// decode rows together), GQA, split-KV: dispatch, the split combine and the
// generic kernel.
//
// Layout: q/out [T, Hq*D] bf16; K and V caches [slots, Hkv, D] bf16 for one
// layer, slot = block_tables[seq][p / block_size]*block_size + p % block_size.
// Row t attends to positions 0..positions[t] of its sequence row_seq[t].
//
// For D of 64 or 128 (and 16-byte aligned operands) rows go to two kernels:
// decode rows (the only query row of their sequence) to the split-KV
// CUDA-core kernel of attention_decode.cu (variants 4 and 5: the balanced
// one of attention_decode_balanced.cu), bound by reading K and V; runs of
// prefill rows to the tensor-core flash kernel of attention_prefill_gqa.cu
// (variant 3: the first one, attention_prefill.cu), bound by FLOPs. Which
// rows are which is read on the device from row_seq, so graphs stay valid
// when a step's mix changes; the host only knows whether any sequence has
// several rows (T > sequences).
//
// Any other head size takes the generic kernel below (also kept as the
// baseline for benchmarks): grid (row, kv head x query-head chunk, split),
// 4 warps striding over the keys with one bf16 element per lane.
#include <math.h>
#include <stdlib.h>

#include "attention.cuh"

constexpr int kWarps = 4;
constexpr int kUnroll = 4;
constexpr float kNegBig = kAttnNegBig;

// tk_attn_variant: 0 the default kernels, 1 every row on the generic kernel
// (the baseline), 2 the first version of the fast path: a separate split
// combine kernel and the first prefill kernel with 64-row tiles always,
// 3 the default decode path with the first prefill kernel
// (attention_prefill.cu: one query head a block, 16 rows a warp, 64 or 128
// rows a tile) in place of the default (attention_prefill_gqa.cu: the query
// heads of a KV group in one tile, 32 rows a warp). (A decode kernel with
// software-pipelined K/V loads was slower on H100 at batch 64-256,
// 2026-11-26: 2489 vs 2589 GB/s at batch 192, and was removed.)
// 4 the default with the balanced decode kernel (attention_decode_balanced.cu:
// a fixed grid of 3 blocks per SM, each a block's equal share of the
// decode rows' key work), 5 the same with 4 tasks per block handed out by
// a counter. Under 4 and 5 the "splits" of tk_attention_splits is that
// grid size, and the workspace is sized for it. They stream K/V faster in
// the kernel benchmark at batch 64-256 (H100, b256 contexts 1,000-2,000:
// 2,778 GB/s against 2,616) but made the engine's decode step slower
// (1000/1000 throughput: 20.81 ms a step with the split kernel, 22.46 with
// 4, 21.75 with 5; bench/cuda/run-ab-graphs.sh, 2026-11-26), so the
// split kernel stays the default.
// 6 the default with the split decode kernel's blocks ordered heads first
// (the blocks of one decode row's KV heads, which read the same cache
// blocks, launched side by side).
// Benchmarks compare them.
// -1: not yet read from TOKAMAK_ATTN_VARIANT.
static int tk_attn_variant = -1;

static int attn_variant() {
  if (tk_attn_variant < 0) {
    const char *e = getenv("TOKAMAK_ATTN_VARIANT");
    tk_attn_variant = e ? atoi(e) : 0;
  }
  return tk_attn_variant;
}

extern "C" int tk_attention_variant(void) { return attn_variant(); }

extern "C" int tk_set_attention_variant(int v) {
  int prev = attn_variant();
  tk_attn_variant = v;
  return prev;
}

template <int E, int GC>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(
    __nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *kc,
    const __nv_bfloat16 *vc, const int32_t *positions, const int32_t *row_seq,
    const int32_t *block_tables, int bt_stride, int bs, float scale, int Hq, int Hkv, int D,
    int splits, float *ws_ml, float *ws_acc, int T) {
  tk_griddep_wait();
  __shared__ float sm_acc[kWarps][GC][E * 32];
  __shared__ float sm_ml[kWarps][GC][2];
  const int t = blockIdx.x;
  const int G = Hq / Hkv;
  const int ngc = (G + GC - 1) / GC;
  const int kvh = blockIdx.y / ngc, gc = blockIdx.y % ngc;
  const int h0 = kvh * G + gc * GC;
  const int nh = min(GC, G - gc * GC);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n = positions[t] + 1;
  const int seq = row_seq[t];
  const int chunk = attn_split_chunk(n, splits);
  const int k0 = blockIdx.z * chunk;
  if (k0 >= n) return;  // beyond this row's context: the combine skips it
  const int k1 = min(n, k0 + chunk);
  const int32_t *bt = block_tables + (size_t)seq * bt_stride;

  float qv[GC][E], acc[GC][E], m[GC], l[GC];
#pragma unroll
  for (int g = 0; g < GC; g++) {
    m[g] = kNegBig;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < E; e++) {
      int d = lane + 32 * e;
      acc[g][e] = 0.f;
      qv[g][e] = (g < nh && d < D) ? __bfloat162float(q[((size_t)t * Hq + h0 + g) * D + d]) * scale
                                   : 0.f;
    }
  }

  for (int kb = k0 + warp * kUnroll; kb < k1; kb += kWarps * kUnroll) {
    float kv[kUnroll][E], vv[kUnroll][E];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      int p = kb + u;
      size_t base = 0;
      bool ok = p < k1;
      if (ok) base = ((size_t)bt[p / bs] * bs + p % bs) * Hkv * D + (size_t)kvh * D;
#pragma unroll
      for (int e = 0; e < E; e++) {
        int d = lane + 32 * e;
        bool in = ok && d < D;
        kv[u][e] = in ? __bfloat162float(kc[base + d]) : 0.f;
        vv[u][e] = in ? __bfloat162float(vc[base + d]) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      if (kb + u >= k1) break;
#pragma unroll
      for (int g = 0; g < GC; g++) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < E; e++) s += qv[g][e] * kv[u][e];
        s = warp_sum(s);
        if (s > m[g]) {
          float corr = __expf(m[g] - s);
          l[g] = l[g] * corr + 1.f;
#pragma unroll
          for (int e = 0; e < E; e++) acc[g][e] = acc[g][e] * corr + vv[u][e];
          m[g] = s;
        } else {
          float pr = __expf(s - m[g]);
          l[g] += pr;
#pragma unroll
          for (int e = 0; e < E; e++) acc[g][e] += pr * vv[u][e];
        }
      }
    }
  }

  // merge the warps' states
#pragma unroll
  for (int g = 0; g < GC; g++) {
#pragma unroll
    for (int e = 0; e < E; e++) sm_acc[warp][g][lane + 32 * e] = acc[g][e];
    if (lane == 0) {
      sm_ml[warp][g][0] = m[g];
      sm_ml[warp][g][1] = l[g];
    }
  }
  __syncthreads();
  for (int g = warp; g < nh; g += kWarps) {
    float M = kNegBig;
    for (int w = 0; w < kWarps; w++) M = fmaxf(M, sm_ml[w][g][0]);
    float L = 0.f;
    float wt[kWarps];
    for (int w = 0; w < kWarps; w++) {
      wt[w] = __expf(sm_ml[w][g][0] - M);
      L += sm_ml[w][g][1] * wt[w];
    }
    int h = h0 + g;
    for (int d = lane; d < D; d += 32) {
      float a = 0.f;
      for (int w = 0; w < kWarps; w++) a += sm_acc[w][g][d] * wt[w];
      if (splits == 1) {
        out[((size_t)t * Hq + h) * D + d] = __float2bfloat16(L > 0.f ? a / L : 0.f);
      } else {
        ws_acc[(((size_t)blockIdx.z * T + t) * Hq + h) * D + d] = a;
      }
    }
    if (splits > 1 && lane == 0) {
      size_t i = ((size_t)blockIdx.z * T + t) * Hq + h;
      ws_ml[2 * i] = M;
      ws_ml[2 * i + 1] = L;
    }
  }
}

// One warp per (row, head): merges the used splits' partial softmax states
// (max and sum in natural-log units for the generic kernel, log2 units for
// the decode kernel). With only_single, rows of multi-row sequences belong
// to the prefill kernel and are left alone.
template <bool kLog2>
__global__ void attention_combine_kernel(__nv_bfloat16 *out, const float *ws_ml,
                                         const float *ws_acc, const int32_t *positions,
                                         const int32_t *row_seq, int only_single, int T, int Hq,
                                         int D, int splits) {
  tk_griddep_wait();
  int wid = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (wid >= T * Hq) return;
  int t = wid / Hq;
  if (only_single && !attn_single_row(row_seq, t, T)) return;
  int n = positions[t] + 1;
  int chunk = attn_split_chunk(n, splits);
  int used = min(splits, (n + chunk - 1) / chunk);
  attn_merge_splits<kLog2>(out, ws_ml, ws_acc, wid, used, (size_t)T * Hq, D);
}

// attn_balanced_tasks is the tasks per block of the balanced decode kernel
// under variant v (0: the split kernel).
static int attn_balanced_tasks(int v) { return v == 4 ? 1 : v == 5 ? 4 : 0; }

static int group_chunk(int G) {
  if (G <= 1) return 1;
  if (G <= 2) return 2;
  if (G <= 4) return 4;
  return 8;
}

// tk_attention_splits plans the decode kernel's grid: base blocks (rows x
// query-head chunks) times splits should fill whole waves of the chip at
// the planned occupancy, without more splits than the fill needs (each
// adds a partial to merge). It depends on the shape only (graph-safe).
extern "C" int tk_attention_splits(int T, int Hq, int Hkv, int sm_count) {
  if (T <= 0 || Hkv <= 0 || Hq % Hkv || sm_count <= 0) return 1;
  if (int k = attn_balanced_tasks(attn_variant()); k > 0)
    return min(kAttnDecodeBlocksPerSM * sm_count, (kAttnCounters - 2) / k);
  int G = Hq / Hkv;
  int gc = group_chunk(G);
  long long base = (long long)T * Hkv * ((G + gc - 1) / gc);
  long long wave = (long long)kAttnDecodeBlocksPerSM * sm_count;
  // time of s splits ~ waves run x keys per block (relative to 1 split);
  // take the fewest splits within 10% of the best
  auto cost = [&](int s) { return (double)((base * s + wave - 1) / wave) / s; };
  // TOKAMAK_ATTN_MAX_SPLITS caps the plan (for comparisons)
  static int cap = -1;
  if (cap < 0) {
    const char *e = getenv("TOKAMAK_ATTN_MAX_SPLITS");
    cap = e && atoi(e) > 0 ? atoi(e) : kAttnMaxSplits;
  }
  const int top = cap < kAttnMaxSplits ? cap : kAttnMaxSplits;
  double best = 1e30;
  for (int s = 1; s <= top; s++) best = fmin(best, cost(s));
  for (int s = 1; s <= top; s++)
    if (cost(s) <= 1.1 * best) return s;
  return 1;
}

extern "C" size_t tk_attention_workspace(int T, int Hq, int D, int splits) {
  if (splits <= 1) return 0;
  if (int k = attn_balanced_tasks(attn_variant()); k > 0)
    return attn_balanced_workspace_floats(splits, k, D) * sizeof(float);
  return ((size_t)kAttnCounters + (size_t)splits * T * Hq * (D + 2) + 4) * sizeof(float);
}

template <int E, int GC>
static cudaError_t launch(dim3 grid, cudaStream_t s, __nv_bfloat16 *out, const __nv_bfloat16 *q,
                          const __nv_bfloat16 *kc, const __nv_bfloat16 *vc, const int32_t *pos,
                          const int32_t *row_seq, const int32_t *bt, int bt_stride, int bs,
                          float scale, int Hq, int Hkv, int D, int splits, float *ws_ml,
                          float *ws_acc, int T) {
  return tk_launch(attention_kernel<E, GC>, grid, kWarps * 32, s, out, q, kc, vc, pos, row_seq,
                   bt, bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
}

template <int E>
static cudaError_t launch_gc(int gc, dim3 grid, cudaStream_t s, const AttnArgs &a) {
  switch (gc) {
    case 1: return launch<E, 1>(grid, s, a.out, a.q, a.kc, a.vc, a.positions, a.row_seq, a.block_tables, a.bt_stride, a.bs, a.scale, a.Hq, a.Hkv, a.D, a.splits, a.ws_ml, a.ws_acc, a.T);
    case 2: return launch<E, 2>(grid, s, a.out, a.q, a.kc, a.vc, a.positions, a.row_seq, a.block_tables, a.bt_stride, a.bs, a.scale, a.Hq, a.Hkv, a.D, a.splits, a.ws_ml, a.ws_acc, a.T);
    case 4: return launch<E, 4>(grid, s, a.out, a.q, a.kc, a.vc, a.positions, a.row_seq, a.block_tables, a.bt_stride, a.bs, a.scale, a.Hq, a.Hkv, a.D, a.splits, a.ws_ml, a.ws_acc, a.T);
    default: return launch<E, 8>(grid, s, a.out, a.q, a.kc, a.vc, a.positions, a.row_seq, a.block_tables, a.bt_stride, a.bs, a.scale, a.Hq, a.Hkv, a.D, a.splits, a.ws_ml, a.ws_acc, a.T);
  }
}

static cudaError_t launch_generic(const AttnArgs &a, cudaStream_t st) {
  int G = a.Hq / a.Hkv;
  int gc = group_chunk(G);
  dim3 grid(a.T, a.Hkv * ((G + gc - 1) / gc), a.splits);
  if (a.D <= 32) return launch_gc<1>(gc, grid, st, a);
  if (a.D <= 64) return launch_gc<2>(gc, grid, st, a);
  if (a.D <= 128) return launch_gc<4>(gc, grid, st, a);
  return launch_gc<8>(gc, grid, st, a);
}

bool attn_fast_supported(int D) { return D == 64 || D == 128; }

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int tk_attention(void *out, const void *q, const void *k_cache, const void *v_cache,
                            const int32_t *positions, const int32_t *row_seq,
                            const int32_t *block_tables, int bt_stride, int block_size,
                            float scale, int T, int num_seqs, const int32_t *decode_rows,
                            int num_decode, int Hq, int Hkv, int D, int splits,
                            void *workspace, tk_stream s) {
  if (T <= 0 || num_seqs <= 0 || num_seqs > T || Hkv <= 0 || Hq % Hkv || D <= 0 || D > 256 ||
      splits < 1 || block_size <= 0 || num_decode < 0 || num_decode > num_seqs ||
      (num_decode > 0 && decode_rows == nullptr))
    return 20000;
  if (splits > 1 && workspace == nullptr) return 20000;
  const int variant = attn_variant();
  const bool fast = variant != 1 && attn_fast_supported(D) && aligned16(q) &&
                    aligned16(k_cache) && aligned16(v_cache) && aligned16(out);
  // the balanced decode kernel: splits is its grid; the workspace is laid
  // out for it, so the generic kernel takes no splits beside it
  const int tasks = attn_balanced_tasks(variant);
  const bool balanced = tasks > 0 && fast && splits > 1;
  if (tasks > 0 && !balanced) splits = 1;
  AttnArgs a;
  a.out = (__nv_bfloat16 *)out;
  a.q = (const __nv_bfloat16 *)q;
  a.kc = (const __nv_bfloat16 *)k_cache;
  a.vc = (const __nv_bfloat16 *)v_cache;
  a.positions = positions;
  a.row_seq = row_seq;
  a.block_tables = block_tables;
  a.bt_stride = bt_stride;
  a.bs = block_size;
  a.bs_shift = -1;
  if ((block_size & (block_size - 1)) == 0) {
    a.bs_shift = 0;
    while ((1 << a.bs_shift) < block_size) a.bs_shift++;
  }
  a.scale = scale;
  a.T = T;
  a.Hq = Hq;
  a.Hkv = Hkv;
  a.D = D;
  a.splits = splits;
  a.counters = nullptr;
  a.decode_rows = decode_rows;
  a.num_decode = num_decode;
  a.ws_ml = a.ws_acc = nullptr;
  if (balanced) {
    a.ws_ml = (float *)workspace + kAttnCounters;
    a.ws_acc = a.ws_ml + attn_balanced_ml_floats(splits, tasks);
  } else if (splits > 1) {
    a.ws_ml = (float *)workspace + kAttnCounters;
    // acc partials start 16-byte aligned (the combine reads them as float4)
    a.ws_acc = a.ws_ml + ((2 * (size_t)splits * T * Hq + 3) & ~(size_t)3);
  }
  cudaStream_t st = TK_STREAM(s);
  if (!fast) {
    if (cudaError_t e = launch_generic(a, st); e != cudaSuccess) {
      cudaGetLastError();  // clear it
      tk_note_call("attention_kernel");
      return (int)e;
    }
    if (splits > 1) {
      tk_launch(attention_combine_kernel<false>, tk_cdiv((long long)T * Hq * 32, 128), 128, st,
                a.out, (const float *)a.ws_ml, (const float *)a.ws_acc, positions, row_seq, 0, T,
                Hq, D, splits);
      TK_LAUNCHED("attention_combine_kernel");
    }
    return 0;
  }
  // T == num_seqs: every row is a decode row. One sequence with T > 1
  // rows: all prefill. Otherwise both kernels, each picking its rows.
  const bool mixed = T > num_seqs;
  if (num_decode > 0 && balanced) {
    a.counters = (int *)workspace;
    if (cudaError_t e = attn_launch_decode_balanced(a, tasks, st); e != cudaSuccess) {
      cudaGetLastError();  // clear it
      tk_note_call("attn_decode_balanced_kernel");
      return (int)e;
    }
  } else if (num_decode > 0) {
    // the decode kernel merges its splits itself where the counters suffice
    const int G = Hq / Hkv, gc = group_chunk(G);
    if (variant != 2 && splits > 1 && (long long)T * Hkv * ((G + gc - 1) / gc) <= kAttnCounters)
      a.counters = (int *)workspace;
    if (cudaError_t e = attn_launch_decode(a, variant == 6, st); e != cudaSuccess) {
      cudaGetLastError();  // clear it
      tk_note_call("attn_decode_kernel");
      return (int)e;
    }
    if (splits > 1 && a.counters == nullptr) {
      tk_launch(attention_combine_kernel<true>, tk_cdiv((long long)T * Hq * 32, 128), 128, st,
                a.out, (const float *)a.ws_ml, (const float *)a.ws_acc, positions, row_seq,
                (int)mixed, T, Hq, D, splits);
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) {
        tk_note_call("attention_combine_kernel");
        return (int)e;
      }
    }
  }
  if (mixed && variant != 2 && variant != 3 && attn_prefill_gqa_supported(D, Hq, Hkv)) {
    if (cudaError_t e = attn_launch_prefill_gqa(a, 1, st); e != cudaSuccess) {
      cudaGetLastError();  // clear it
      tk_note_call("attn_prefill_gqa_kernel");
      return (int)e;
    }
  } else if (mixed) {
    // 128-row tiles (8 warps) halve the K/V tile loads per FLOP: faster for
    // long prompts (2048 rows: 113 -> 126 TFLOP/s on H100), slower for 512
    // (81 -> 70: fewer blocks, more causal imbalance). Rows per sequence
    // picks; T and num_seqs only, so graphs stay valid.
    const bool warps8 = variant != 2 && (long long)T >= 1024LL * num_seqs;
    if (cudaError_t e = attn_launch_prefill(a, 1, warps8, st); e != cudaSuccess) {
      cudaGetLastError();  // clear it
      tk_note_call("attn_prefill_kernel");
      return (int)e;
    }
  }
  return 0;
}
