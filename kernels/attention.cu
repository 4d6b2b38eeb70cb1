// attention.cu: causal paged attention for a varlen batch (prefill rows and
// decode rows together), GQA, split-KV.
//
// Layout: q/out [T, Hq*D] bf16; K and V caches [slots, Hkv, D] bf16 for one
// layer, slot = block_tables[seq][p / block_size]*block_size + p % block_size.
// Row t attends to positions 0..positions[t] of its sequence row_seq[t].
//
// Grid: (row, kv head x query-head chunk, split). A block serves up to GC
// query heads that share one KV head, so each K/V vector is read once per
// query group; its 4 warps stride over the split's keys, 4 keys in flight
// per warp, with a float32 online softmax per head. With few rows (decode)
// the keys are split over `splits` blocks so that the whole chip streams
// the cache; a second kernel merges the partial (max, sum, acc) triples.
// Decode is bound by reading K and V (4*D bytes per key per KV head);
// prefill here is a CUDA-core kernel (no tensor cores yet).
#include <math.h>

#include "common.cuh"

constexpr int kWarps = 4;
constexpr int kUnroll = 4;
constexpr float kNegBig = -1e30f;
// A split covers at least this many keys, so short contexts use few splits
// (the grid is sized for the longest, graph-safe; surplus blocks exit).
constexpr int kMinChunk = 32;

__device__ __forceinline__ int split_chunk(int n, int splits) {
  return max((n + splits - 1) / splits, kMinChunk);
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
  const int chunk = split_chunk(n, splits);
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
// (at most 32: lane s holds split s's max and sum).
__global__ void attention_combine_kernel(__nv_bfloat16 *out, const float *ws_ml,
                                         const float *ws_acc, const int32_t *positions, int T,
                                         int Hq, int D, int splits) {
  tk_griddep_wait();
  int wid = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (wid >= T * Hq) return;
  int t = wid / Hq;
  int n = positions[t] + 1;
  int used = min(splits, (n + split_chunk(n, splits) - 1) / split_chunk(n, splits));
  float m = kNegBig, l = 0.f;
  if (lane < used) {
    size_t i = (size_t)lane * T * Hq + wid;
    m = ws_ml[2 * i];
    l = ws_ml[2 * i + 1];
  }
  float M = warp_max(m);
  float e = lane < used ? __expf(m - M) : 0.f;
  float L = warp_sum(l * e);
  float wgt = L > 0.f ? e / L : 0.f;
  if ((D & 3) == 0) {
    // 4 dims a lane with 16-byte loads, all splits' loads in flight together
    for (int d0 = 0; d0 < D; d0 += 128) {  // every lane runs the shuffles
      int d = d0 + lane * 4;
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 16
      for (int s = 0; s < used; s++) {
        float ws = __shfl_sync(0xffffffffu, wgt, s);
        if (d < D) {
          float4 v = *reinterpret_cast<const float4 *>(ws_acc + ((size_t)s * T * Hq + wid) * D + d);
          a.x += v.x * ws;
          a.y += v.y * ws;
          a.z += v.z * ws;
          a.w += v.w * ws;
        }
      }
      if (d < D) {
        __nv_bfloat16 *o = out + (size_t)wid * D + d;
        o[0] = __float2bfloat16(a.x);
        o[1] = __float2bfloat16(a.y);
        o[2] = __float2bfloat16(a.z);
        o[3] = __float2bfloat16(a.w);
      }
    }
    return;
  }
  for (int d0 = 0; d0 < D; d0 += 32) {  // every lane runs the shuffles
    int d = d0 + lane;
    float a = 0.f;
#pragma unroll 8
    for (int s = 0; s < used; s++) {
      float ws = __shfl_sync(0xffffffffu, wgt, s);
      if (d < D) a += ws_acc[((size_t)s * T * Hq + wid) * D + d] * ws;
    }
    if (d < D) out[(size_t)wid * D + d] = __float2bfloat16(a);
  }
}

static int group_chunk(int G) {
  if (G <= 1) return 1;
  if (G <= 2) return 2;
  if (G <= 4) return 4;
  return 8;
}

extern "C" int tk_attention_splits(int T, int Hq, int Hkv, int sm_count) {
  if (T <= 0 || Hkv <= 0 || Hq % Hkv) return 1;
  int G = Hq / Hkv;
  int gc = group_chunk(G);
  long long base = (long long)T * Hkv * ((G + gc - 1) / gc);
  // aim for 8 blocks (32 warps) per SM: with fewer, the key loop is bound
  // by memory latency, not bandwidth (b16 at 32k context ran at 550 GB/s
  // with a 2-blocks-per-SM target)
  long long want = 8LL * sm_count;
  if (base >= want) return 1;
  long long s = (want + base - 1) / base;
  if (s > 32) s = 32;
  return (int)s;
}

extern "C" size_t tk_attention_workspace(int T, int Hq, int D, int splits) {
  if (splits <= 1) return 0;
  return ((size_t)splits * T * Hq * (D + 2) + 4) * sizeof(float);
}

template <int E, int GC>
static void launch(dim3 grid, cudaStream_t s, __nv_bfloat16 *out, const __nv_bfloat16 *q,
                   const __nv_bfloat16 *kc, const __nv_bfloat16 *vc, const int32_t *pos,
                   const int32_t *row_seq, const int32_t *bt, int bt_stride, int bs,
                   float scale, int Hq, int Hkv, int D, int splits, float *ws_ml,
                   float *ws_acc, int T) {
  tk_launch(attention_kernel<E, GC>, grid, kWarps * 32, s, out, q, kc, vc, pos, row_seq, bt,
            bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
}

template <int E>
static void launch_gc(int gc, dim3 grid, cudaStream_t s, __nv_bfloat16 *out,
                      const __nv_bfloat16 *q, const __nv_bfloat16 *kc,
                      const __nv_bfloat16 *vc, const int32_t *pos, const int32_t *row_seq,
                      const int32_t *bt, int bt_stride, int bs, float scale, int Hq, int Hkv,
                      int D, int splits, float *ws_ml, float *ws_acc, int T) {
  switch (gc) {
    case 1: launch<E, 1>(grid, s, out, q, kc, vc, pos, row_seq, bt, bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T); break;
    case 2: launch<E, 2>(grid, s, out, q, kc, vc, pos, row_seq, bt, bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T); break;
    case 4: launch<E, 4>(grid, s, out, q, kc, vc, pos, row_seq, bt, bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T); break;
    default: launch<E, 8>(grid, s, out, q, kc, vc, pos, row_seq, bt, bt_stride, bs, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T); break;
  }
}

extern "C" int tk_attention(void *out, const void *q, const void *k_cache, const void *v_cache,
                            const int32_t *positions, const int32_t *row_seq,
                            const int32_t *block_tables, int bt_stride, int block_size,
                            float scale, int T, int Hq, int Hkv, int D, int splits,
                            void *workspace, tk_stream s) {
  if (T <= 0 || Hkv <= 0 || Hq % Hkv || D <= 0 || D > 256 || splits < 1 || block_size <= 0)
    return 20000;
  if (splits > 1 && workspace == nullptr) return 20000;
  int G = Hq / Hkv;
  int gc = group_chunk(G);
  int ngc = (G + gc - 1) / gc;
  dim3 grid(T, Hkv * ngc, splits);
  float *ws_ml = (float *)workspace;
  // acc partials start 16-byte aligned (the combine reads them as float4)
  float *ws_acc = splits > 1 ? ws_ml + ((2 * (size_t)splits * T * Hq + 3) & ~(size_t)3) : nullptr;
  cudaStream_t st = TK_STREAM(s);
  auto o = (__nv_bfloat16 *)out;
  auto qq = (const __nv_bfloat16 *)q;
  auto kc = (const __nv_bfloat16 *)k_cache;
  auto vc = (const __nv_bfloat16 *)v_cache;
  if (D <= 32)
    launch_gc<1>(gc, grid, st, o, qq, kc, vc, positions, row_seq, block_tables, bt_stride, block_size, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
  else if (D <= 64)
    launch_gc<2>(gc, grid, st, o, qq, kc, vc, positions, row_seq, block_tables, bt_stride, block_size, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
  else if (D <= 128)
    launch_gc<4>(gc, grid, st, o, qq, kc, vc, positions, row_seq, block_tables, bt_stride, block_size, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
  else
    launch_gc<8>(gc, grid, st, o, qq, kc, vc, positions, row_seq, block_tables, bt_stride, block_size, scale, Hq, Hkv, D, splits, ws_ml, ws_acc, T);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    tk_note_call("attention_kernel");
    return (int)e;
  }
  if (splits > 1) {
    int warps = T * Hq;
    tk_launch(attention_combine_kernel, tk_cdiv((long long)warps * 32, 128), 128, st, o,
              (const float *)ws_ml, (const float *)ws_acc, positions, T, Hq, D, splits);
    TK_LAUNCHED("attention_combine_kernel");
  }
  return 0;
}
