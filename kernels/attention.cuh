// attention.cuh: internals shared by the attention kernel files
// (attention.cu dispatches; attention_decode.cu and attention_prefill.cu hold
// the fast kernels). Not part of the ABI.
#pragma once

#include "common.cuh"

constexpr float kAttnNegBig = -1e30f;
// A split covers at least this many keys, so short contexts use few splits
// (the grid is sized for the longest, graph-safe; surplus blocks exit).
constexpr int kAttnMinChunk = 32;
constexpr int kAttnMaxSplits = 64;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ int attn_split_chunk(int n, int splits) {
  return max((n + splits - 1) / splits, kAttnMinChunk);
}

// attn_single_row: row t is the only query row of its sequence (a decode
// row). Read from the staged row→sequence map, so a graph replayed on a
// step with another mix of decode and prefill rows stays right.
__device__ __forceinline__ bool attn_single_row(const int32_t *row_seq, int t, int T) {
  int s = row_seq[t];
  return (t == 0 || row_seq[t - 1] != s) && (t + 1 >= T || row_seq[t + 1] != s);
}

// The workspace starts with kAttnCounters ints, zero between calls: per
// (row, block column) the number of splits done, for the decode kernel's
// in-kernel merge (the last split to finish merges and resets it). Their
// place does not depend on the shape, so steps of different shapes that
// share the workspace never write partials over them.
constexpr int kAttnCounters = 8192;

// attn_merge_splits: one warp merges the used split partials of (row,
// head) wid into out (max and sum in log2 units when kLog2, else natural
// log). Partials may come from other blocks of the running grid: read
// through L2.
template <bool kLog2>
__device__ __forceinline__ void attn_merge_splits(__nv_bfloat16 *out, const float *ws_ml,
                                                  const float *ws_acc, size_t wid, int used,
                                                  size_t sstride, int D) {
  const int lane = threadIdx.x & 31;
  float M = kAttnNegBig;
  for (int s = lane; s < used; s += 32) M = fmaxf(M, __ldcg(ws_ml + 2 * (s * sstride + wid)));
  M = warp_max(M);
  float L = 0.f;
  for (int s = lane; s < used; s += 32) {
    size_t i = s * sstride + wid;
    float x = __ldcg(ws_ml + 2 * i) - M;
    L += __ldcg(ws_ml + 2 * i + 1) * (kLog2 ? exp2f(x) : __expf(x));
  }
  L = warp_sum(L);
  const float inv = L > 0.f ? 1.f / L : 0.f;
  if ((D & 3) == 0) {
    // 4 dims a lane with 16-byte loads
    for (int d = lane * 4; d < D; d += 128) {
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
      for (int s = 0; s < used; s++) {
        size_t i = s * sstride + wid;
        float x = __ldcg(ws_ml + 2 * i) - M;
        float w = (kLog2 ? exp2f(x) : __expf(x)) * inv;
        float4 v = __ldcg(reinterpret_cast<const float4 *>(ws_acc + i * D + d));
        a.x += v.x * w;
        a.y += v.y * w;
        a.z += v.z * w;
        a.w += v.w * w;
      }
      __nv_bfloat16 *o = out + wid * D + d;
      *reinterpret_cast<__nv_bfloat162 *>(o) = __floats2bfloat162_rn(a.x, a.y);
      *reinterpret_cast<__nv_bfloat162 *>(o + 2) = __floats2bfloat162_rn(a.z, a.w);
    }
    return;
  }
  for (int d = lane; d < D; d += 32) {
    float a = 0.f;
    for (int s = 0; s < used; s++) {
      size_t i = s * sstride + wid;
      float x = __ldcg(ws_ml + 2 * i) - M;
      a += __ldcg(ws_acc + i * D + d) * (kLog2 ? exp2f(x) : __expf(x)) * inv;
    }
    out[wid * D + d] = __float2bfloat16(a);
  }
}

// Tensor-core helpers of the prefill kernels (attention_prefill*.cu).

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

// cp_async16 copies 16 bytes to shared memory, or writes zeros when !ok.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
  int n = ok ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(n)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}

// mma16816: c[16x8] += a[16x16] (row) * b[16x8] (col), bf16 in, f32 out.
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

// AttnArgs are one attention launch's operands (see tk_attention).
struct AttnArgs {
  __nv_bfloat16 *out;
  const __nv_bfloat16 *q, *kc, *vc;
  const int32_t *positions, *row_seq, *block_tables;
  int bt_stride, bs, bs_shift;  // bs_shift: log2(bs) when bs is a power of two, else -1
  float scale;
  int T, Hq, Hkv, D, splits;
  float *ws_ml, *ws_acc;  // split partials: (max, sum) pairs and accumulators
  int *counters;          // kAttnCounters split counters (fused merge), or null
  // decode_rows: the rows that are their sequence's only query row, in
  // order (num_decode rows); the decode kernel's grid covers just these
  const int32_t *decode_rows;
  int num_decode;
};

// attn_slot maps position p of a sequence to its cache slot.
__device__ __forceinline__ long long attn_slot(const int32_t *bt, int p, int bs, int bs_shift) {
  int blk = bs_shift >= 0 ? p >> bs_shift : p / bs;
  return (long long)bt[blk] * bs + (p - blk * bs);
}

// attn_decode_span: the block's kWarps warps attend decode row t's query
// heads [h0, h0 + nh) (nh <= GC, all of KV head kvh) over the keys
// [k0, k1) of its sequence (block table bt). D/8 lanes hold one key
// (16-byte loads, 8 bf16 a lane), so a warp reads 32/(D/8) keys a load and
// each lane keeps U keys' K and V loads in flight before their first use;
// the next keys' block-table entries are read while those loads fly.
// Scores are reduced across the D/8 lanes with shuffles; each lane group
// keeps its own float32 online softmax (log2 units), and the groups of a
// warp merge at the end. Each warp leaves its partial state in
// sm_acc[warp] (unnormalized accumulators) and sm_ml[warp] (max, sum); the
// caller synchronizes and merges the warps. Shared by the split kernel
// (attention_decode.cu) and the balanced one.
template <int D, int GC, int U, int kWarps>
__device__ __forceinline__ void attn_decode_span(const AttnArgs &a, int t, int kvh, int h0, int nh,
                                                 int k0, int k1, const int32_t *bt,
                                                 float (*sm_acc)[GC][D], float (*sm_ml)[GC][2]) {
  constexpr int LPK = D / 8;             // lanes per key
  constexpr int KPW = 32 / LPK;          // keys per warp per load
  constexpr int KPI = kWarps * KPW * U;  // keys per block per iteration
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / LPK, c = lane % LPK;
  const long long stride = (long long)a.Hkv * D;  // elements per slot
  const __nv_bfloat16 *kb = a.kc + (size_t)kvh * D + c * 8;
  const __nv_bfloat16 *vb = a.vc + (size_t)kvh * D + c * 8;
  const float qs = a.scale * kLog2e;

  float qv[GC][8], acc[GC][8], m[GC], l[GC];
#pragma unroll
  for (int g = 0; g < GC; g++) {
    uint4 u = make_uint4(0u, 0u, 0u, 0u);
    if (g < nh) u = *reinterpret_cast<const uint4 *>(a.q + ((size_t)t * a.Hq + h0 + g) * D + c * 8);
    bf16x8(u, qv[g]);
    m[g] = kAttnNegBig;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      qv[g][i] *= qs;
      acc[g][i] = 0.f;
    }
  }

  // element offsets of this lane's U keys (-1: past the span)
  const int lane_key = warp * KPW * U + sub;
  long long off[U];
#pragma unroll
  for (int u = 0; u < U; u++) {
    int p = k0 + lane_key + u * KPW;
    off[u] = p < k1 ? attn_slot(bt, p, a.bs, a.bs_shift) * stride : -1;
  }
  for (int it = k0; it < k1; it += KPI) {
    uint4 kr[U], vr[U];
    bool ok[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      ok[u] = off[u] >= 0;
      kr[u] = make_uint4(0u, 0u, 0u, 0u);
      vr[u] = make_uint4(0u, 0u, 0u, 0u);
      if (ok[u]) {
        kr[u] = __ldg(reinterpret_cast<const uint4 *>(kb + off[u]));
        vr[u] = __ldg(reinterpret_cast<const uint4 *>(vb + off[u]));
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      int p = it + KPI + lane_key + u * KPW;
      off[u] = p < k1 ? attn_slot(bt, p, a.bs, a.bs_shift) * stride : -1;
    }
    float s[U][GC];
#pragma unroll
    for (int u = 0; u < U; u++) {
      float kf[8];
      bf16x8(kr[u], kf);
#pragma unroll
      for (int g = 0; g < GC; g++) {
        float d = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++) d = fmaf(qv[g][i], kf[i], d);
        s[u][g] = d;
      }
    }
#pragma unroll
    for (int o = LPK / 2; o >= 1; o >>= 1) {
#pragma unroll
      for (int u = 0; u < U; u++) {
#pragma unroll
        for (int g = 0; g < GC; g++) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], o);
      }
    }
#pragma unroll
    for (int g = 0; g < GC; g++) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; u++) {
        if (!ok[u]) s[u][g] = -INFINITY;
        mx = fmaxf(mx, s[u][g]);
      }
      float corr = exp2f(m[g] - mx);
      m[g] = mx;
      l[g] *= corr;
#pragma unroll
      for (int i = 0; i < 8; i++) acc[g][i] *= corr;
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      float vf[8];
      bf16x8(vr[u], vf);
#pragma unroll
      for (int g = 0; g < GC; g++) {
        float p = exp2f(s[u][g] - m[g]);
        l[g] += p;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[g][i] = fmaf(p, vf[i], acc[g][i]);
      }
    }
  }

  // merge the lane groups of the warp (they saw different keys)
#pragma unroll
  for (int o = LPK; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < GC; g++) {
      float mo = __shfl_xor_sync(0xffffffffu, m[g], o);
      float lo = __shfl_xor_sync(0xffffffffu, l[g], o);
      float M = fmaxf(m[g], mo);
      float ca = exp2f(m[g] - M), cb = exp2f(mo - M);
      l[g] = l[g] * ca + lo * cb;
#pragma unroll
      for (int i = 0; i < 8; i++) {
        float ao = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
        acc[g][i] = acc[g][i] * ca + ao * cb;
      }
      m[g] = M;
    }
  }
  if (lane < LPK) {
#pragma unroll
    for (int g = 0; g < GC; g++) {
#pragma unroll
      for (int i = 0; i < 8; i++) sm_acc[warp][g][c * 8 + i] = acc[g][i];
      if (lane == 0) {
        sm_ml[warp][g][0] = m[g];
        sm_ml[warp][g][1] = l[g];
      }
    }
  }
}

// The fast kernels need D in {64, 128} and 16-byte aligned q and caches.
bool attn_fast_supported(int D);
// attn_decode_blocks_per_sm is the occupancy the split count is planned for.
constexpr int kAttnDecodeBlocksPerSM = 3;
// attn_merge_warps: one warp merges the kWarps partial states that
// attn_decode_span left for head g. With out set it writes the normalized
// result (D bf16); else the merged unnormalized accumulators to ws_acc (D
// floats) and (max, sum) in log2 units to ws_ml, a partial for a later
// merge across blocks.
template <int D, int GC, int kWarps>
__device__ __forceinline__ void attn_merge_warps(const float (*sm_acc)[GC][D],
                                                 const float (*sm_ml)[GC][2], int g,
                                                 __nv_bfloat16 *out, float *ws_acc, float *ws_ml) {
  const int lane = threadIdx.x & 31;
  float M = kAttnNegBig;
#pragma unroll
  for (int w = 0; w < kWarps; w++) M = fmaxf(M, sm_ml[w][g][0]);
  float L = 0.f, wt[kWarps];
#pragma unroll
  for (int w = 0; w < kWarps; w++) {
    wt[w] = exp2f(sm_ml[w][g][0] - M);
    L += sm_ml[w][g][1] * wt[w];
  }
  const float inv = L > 0.f ? 1.f / L : 0.f;
  for (int d = lane; d < D; d += 32) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; w++) v += sm_acc[w][g][d] * wt[w];
    if (out)
      out[d] = __float2bfloat16(v * inv);
    else
      ws_acc[d] = v;
  }
  if (!out && lane == 0) {
    ws_ml[0] = M;
    ws_ml[1] = L;
  }
}

// attn_launch_decode: the rows listed in a.decode_rows (one query token
// each), split-KV.
cudaError_t attn_launch_decode(const AttnArgs &a, bool heads_first, cudaStream_t s);
// attn_launch_decode_balanced: the decode rows on a fixed grid of a.splits
// blocks with the key work split evenly into tasks_per_block tasks a block
// (attention_decode_balanced.cu; variants 4 and 5). Needs a.counters and
// partials laid out by attn_balanced_workspace_floats.
cudaError_t attn_launch_decode_balanced(const AttnArgs &a, int tasks_per_block, cudaStream_t s);
// A balanced-decode partial holds this many heads (the largest query-head
// chunk), so its workspace does not depend on the head layout.
constexpr int kAttnBalancedHeads = 8;
// attn_balanced_ml_floats: the floats of the (max, sum) pairs of the
// balanced kernel's partials (2 per task, kAttnBalancedHeads heads each),
// rounded up so the accumulators after them start 16-byte aligned.
inline size_t attn_balanced_ml_floats(int blocks, int tasks_per_block) {
  return ((size_t)2 * 2 * blocks * tasks_per_block * kAttnBalancedHeads + 3) & ~(size_t)3;
}
// attn_balanced_workspace_floats: counters, pairs and accumulators.
inline size_t attn_balanced_workspace_floats(int blocks, int tasks_per_block, int D) {
  return kAttnCounters + attn_balanced_ml_floats(blocks, tasks_per_block) +
         (size_t)2 * blocks * tasks_per_block * kAttnBalancedHeads * D;
}
// attn_launch_prefill_gqa: the default prefill kernel (attention_prefill_gqa.cu):
// tensor-core flash attention over tiles of 128 (row, query head) pairs of
// one sequence and one KV group (with only_multi, rows of sequences with
// more than one query row; the decode kernel takes the others). Needs
// attn_prefill_gqa_supported.
bool attn_prefill_gqa_supported(int D, int Hq, int Hkv);
cudaError_t attn_launch_prefill_gqa(const AttnArgs &a, int only_multi, cudaStream_t s);
// attn_launch_prefill: the first prefill kernel (attention_prefill.cu), one
// query head a block, tiles of up to 64 query rows of one sequence (warps8:
// 128 rows, 8 warps); only_multi as above.
cudaError_t attn_launch_prefill(const AttnArgs &a, int only_multi, bool warps8, cudaStream_t s);
