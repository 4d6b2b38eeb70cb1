// gemv.cu: out[T, N] = x[T, K] · W[N, K]ᵀ (+bias) for small T (decode),
// optionally fused with the RMSNorm before it and the residual add after it.
//
// Decode is bound by reading W once: N*K*2 bytes for bf16. Each warp owns
// one output row and streams it with 16-byte loads (8 elements per lane per
// chunk) in bursts of kSteps chunks a lane; each W chunk is applied to up to
// NT tokens (x rows come from L1/L2, shared by every warp). float32
// accumulation, one warp reduction per output.
//
// Launch gaps: the first burst of W is requested before
// griddepcontrol.wait, so under programmatic dependent launch a GEMV starts
// streaming its weights while the kernel before it drains; only x waits.
//
// Fusions (bf16 W, K % 8 == 0):
//  - norm: x is the residual stream and g the RMSNorm weight; each block
//    sums the squares of its x rows once (with its warps), writes
//    bf16(x·inv·g) — what RMSNorm would have written — to shared memory
//    (T·K·2 bytes, at most TK_GEMV_NORM_SMEM_BYTES) and the warps read x
//    from there. The sum's order differs from the norm kernel's, so inv may
//    differ in its last bit.
//  - residual: out is the residual stream (bf16) and gets out + bf16(x·Wᵀ),
//    rounded, as AddRMSNorm's add would.
// These remove the separate norm kernel of each sublayer in decode steps.
//
// W may be bf16, f16 or f32 (f32: two 16-byte loads per chunk); a scalar
// variant handles K not divisible by 8.
#include "common.cuh"

constexpr int kGemvWarps = 8;  // scalar kernel
// a norm-fused GEMV's static shared memory must fit beside its x rows
static_assert(4 * 8 * sizeof(float) <= 48 * 1024 - TK_GEMV_NORM_SMEM_BYTES,
              "gemv static shared memory exceeds the room tokamak.h leaves");

struct GemvArgs {
  void *out;
  int odt;
  const __nv_bfloat16 *x;
  const void *w;
  const void *bias;
  int bdt;
  const void *g;  // RMSNorm weight (norm fusion)
  int gdt;
  float eps;
  int T, N, K;
};

// WRaw holds one chunk (8 weights) of a row as loaded; b is used by f32 only.
struct WRaw {
  uint4 a, b;
};

template <int WT>
__device__ __forceinline__ void w_load(WRaw &r, const void *w, size_t idx) {
  if (WT == TK_BF16) {
    r.a = __ldg(reinterpret_cast<const uint4 *>((const __nv_bfloat16 *)w + idx));
  } else if (WT == TK_F16) {
    r.a = __ldg(reinterpret_cast<const uint4 *>((const __half *)w + idx));
  } else {
    const uint4 *p = reinterpret_cast<const uint4 *>((const float *)w + idx);
    r.a = __ldg(p);
    r.b = __ldg(p + 1);
  }
}

template <int WT>
__device__ __forceinline__ void w_cvt(const WRaw &r, float *f) {
  if (WT == TK_BF16) {
    bf16x8(r.a, f);
  } else if (WT == TK_F16) {
    f16x8(r.a, f);
  } else {
    const float *p = reinterpret_cast<const float *>(&r.a);
    const float *q = reinterpret_cast<const float *>(&r.b);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      f[j] = p[j];
      f[4 + j] = q[j];
    }
  }
}

// g8 reads the 8 norm weights g[c..c+7] as floats.
__device__ __forceinline__ void g8(const void *g, int gdt, int c, float *f) {
  const __nv_bfloat16 *gb = (const __nv_bfloat16 *)g + c;
  if (gdt == TK_BF16 && ((uintptr_t)gb & 15) == 0) {
    bf16x8(__ldg(reinterpret_cast<const uint4 *>(gb)), f);
  } else {
#pragma unroll
    for (int j = 0; j < 8; j++) f[j] = ld_any(g, gdt, c + j);
  }
}

// gemv_norm_rows writes the block's nt x rows, RMS-normalised and scaled
// by g, to shared memory sx (bf16, [nt][K]); every thread of the block
// takes part (two barriers).
template <int NT, int kWarps>
__device__ __forceinline__ void gemv_norm_rows(const GemvArgs &a, const __nv_bfloat16 *xg,
                                               int nt, __nv_bfloat16 *sx,
                                               float (&red)[kWarps][NT]) {
  const int K = a.K, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float ss[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) ss[t] = 0.f;
#pragma unroll 4
  for (int c = threadIdx.x * 8; c < K; c += kWarps * 256) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < nt) {
        const uint4 u = __ldg(reinterpret_cast<const uint4 *>(xg + (size_t)t * K + c));
        *reinterpret_cast<uint4 *>(sx + (size_t)t * K + c) = u;
        float f[8];
        bf16x8(u, f);
#pragma unroll
        for (int j = 0; j < 8; j++) ss[t] += f[j] * f[j];
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; t++) {
    const float v = warp_sum(ss[t]);
    if (lane == 0) red[warp][t] = v;
  }
  __syncthreads();
  float inv[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) {
    float tot = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; w++) tot += red[w][t];
    inv[t] = rsqrtf(tot / (float)K + a.eps);
  }
#pragma unroll 4
  for (int c = threadIdx.x * 8; c < K; c += kWarps * 256) {
    float gf[8];
    g8(a.g, a.gdt, c, gf);
#pragma unroll
    for (int t = 0; t < NT; t++) {
      if (t < nt) {
        uint4 *p = reinterpret_cast<uint4 *>(sx + (size_t)t * K + c);
        float f[8];
        bf16x8(*p, f);
        __nv_bfloat162 h[4];
#pragma unroll
        for (int j = 0; j < 4; j++)
          h[j] = __floats2bfloat162_rn(f[2 * j] * inv[t] * gf[2 * j],
                                       f[2 * j + 1] * inv[t] * gf[2 * j + 1]);
        *p = *reinterpret_cast<uint4 *>(h);
      }
    }
  }
  __syncthreads();
}

// gemv_chunk adds the tile's x rows at columns c..c+7 (normalised rows
// from shared memory with kNorm) times one W chunk into acc.
template <int NT, bool kNorm>
__device__ __forceinline__ void gemv_chunk(const float (&wf)[8], const __nv_bfloat16 *xg,
                                           const __nv_bfloat16 *sx, int K, int c, int nt,
                                           float (&acc)[NT]) {
#pragma unroll
  for (int t = 0; t < NT; t++) {
    if (t < nt) {
      float xf[8];
      if (kNorm)
        bf16x8(*reinterpret_cast<const uint4 *>(sx + (size_t)t * K + c), xf);
      else
        bf16x8(__ldg(reinterpret_cast<const uint4 *>(xg + (size_t)t * K + c)), xf);
      float v = acc[t];
#pragma unroll
      for (int j = 0; j < 8; j++) v = fmaf(wf[j], xf[j], v);
      acc[t] = v;
    }
  }
}

// gemv_store sums each token's partial dot over the warp and lane 0 writes
// output row `row` (+bias): stored, or with kResid added into the residual.
template <int NT, bool kResid>
__device__ __forceinline__ void gemv_store(const GemvArgs &a, int row, int t0, int nt, int lane,
                                           const float (&acc)[NT]) {
  const float b = a.bias ? ld_any(a.bias, a.bdt, row) : 0.f;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    const float v = warp_sum(acc[t]);
    if (lane == 0 && t < nt) {
      const size_t o = (size_t)(t0 + t) * a.N + row;
      if (kResid) {
        __nv_bfloat16 *r = (__nv_bfloat16 *)a.out;
        const float y = __bfloat162float(__float2bfloat16(v + b));
        r[o] = __float2bfloat16(y + __bfloat162float(r[o]));
      } else {
        st_any(a.out, a.odt, o, v + b);
      }
    }
  }
}

// gemv_burst_kernel: one row per warp; each lane loads kSteps chunks, then
// uses them. kPrefetch issues the first burst before griddepcontrol.wait.
template <int WT, int NT, int kSteps, int kWarps, bool kNorm, bool kResid, bool kPrefetch>
__global__ void __launch_bounds__(kWarps * 32) gemv_burst_kernel(GemvArgs a) {
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  __shared__ float red[kWarps][NT];
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  const bool active = row < a.N;
  const int K = a.K;
  const int t0 = blockIdx.y * NT;
  const int nt = min(NT, a.T - t0);
  const size_t wbase = (size_t)row * K;
  WRaw buf[kSteps];
  if (kPrefetch && active) {
#pragma unroll
    for (int s = 0; s < kSteps; s++)
      if (lane * 8 + s * 256 < K) w_load<WT>(buf[s], a.w, wbase + lane * 8 + s * 256);
  }
  tk_griddep_wait();
  const __nv_bfloat16 *xg = a.x + (size_t)t0 * K;
  __nv_bfloat16 *sx = reinterpret_cast<__nv_bfloat16 *>(gemv_smem);
  if (kNorm) gemv_norm_rows<NT, kWarps>(a, xg, nt, sx, red);
  if (!active) return;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  bool first = kPrefetch;
  for (int c0 = lane * 8; c0 < K; c0 += 256 * kSteps) {
    if (!first) {
#pragma unroll
      for (int s = 0; s < kSteps; s++)
        if (c0 + s * 256 < K) w_load<WT>(buf[s], a.w, wbase + c0 + s * 256);
    }
    first = false;
#pragma unroll
    for (int s = 0; s < kSteps; s++) {
      const int c = c0 + s * 256;
      if (c >= K) break;
      float wf[8];
      w_cvt<WT>(buf[s], wf);
      gemv_chunk<NT, kNorm>(wf, xg, sx, K, c, nt, acc);
    }
  }
  gemv_store<NT, kResid>(a, row, t0, nt, lane, acc);
}

// Scalar fallback: any K, any float weight dtype.
template <int NT>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_scalar_kernel(
    void *out, int odt, const __nv_bfloat16 *x, const void *w, int wdt, const void *bias,
    int bdt, int T, int N, int K) {
  tk_griddep_wait();
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (row >= N) return;
  const int t0 = blockIdx.y * NT;
  const int nt = min(NT, T - t0);
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  for (int c = lane; c < K; c += 32) {
    float wv = ld_any(w, wdt, (size_t)row * K + c);
#pragma unroll
    for (int t = 0; t < NT; t++)
      if (t < nt) acc[t] += wv * __bfloat162float(x[(size_t)(t0 + t) * K + c]);
  }
  float b = bias ? ld_any(bias, bdt, row) : 0.f;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    float v = warp_sum(acc[t]);
    if (lane == 0 && t < nt) st_any(out, odt, (size_t)(t0 + t) * N + row, v + b);
  }
}

// gemv_burst_launch runs gemv_burst_kernel, one warp per row.
template <int WT, int NT, int kSteps, bool kNorm, bool kResid, bool kPrefetch>
static cudaError_t gemv_burst_launch(cudaStream_t s, const GemvArgs &a) {
  const size_t smem = kNorm ? (size_t)min(NT, a.T) * a.K * sizeof(__nv_bfloat16) : 0;
  dim3 grid(tk_cdiv(a.N, 4), tk_cdiv(a.T, NT));
  return tk_launch_smem(gemv_burst_kernel<WT, NT, kSteps, 4, kNorm, kResid, kPrefetch>, grid, 128,
                        smem, s, a);
}

// Variants, chosen by the caller (TOKAMAK_GEMV_VARIANT or the benchmarks);
// 0 is the default. Measured on H100, Llama-3.1-8B batch-1 decode
// (graph, ms/step, 2026-11-26; matmuls only / whole step with the fusions):
//   0 bursts of 2 loads a lane, the first before the wait  5.38 / 5.80
//   1 bursts of 2, all after the wait                     5.40 / 6.00
//   2 bursts of 1, the first before the wait              5.35 / 6.17
// A ring of 1, 2 or 4 chunks kept in flight per lane (refilled as each is
// used), with one row a warp or a persistent grid of one wave whose warps
// streamed several rows, measured 5.35-5.69 / 5.97-6.22 in the same runs
// and was removed.
template <int WT, int NT, bool kNorm, bool kResid>
static cudaError_t gemv_variant(int variant, cudaStream_t s, const GemvArgs &a) {
  switch (variant) {
    case 1: return gemv_burst_launch<WT, NT, 2, kNorm, kResid, false>(s, a);
    case 2: return gemv_burst_launch<WT, NT, 1, kNorm, kResid, true>(s, a);
    default: return gemv_burst_launch<WT, NT, 2, kNorm, kResid, true>(s, a);
  }
}

// The fused forms exist for bf16 W.
template <int NT>
static cudaError_t gemv_dispatch(int wdt, int variant, bool norm, bool resid, cudaStream_t s,
                                 const GemvArgs &a) {
  if (norm) return gemv_variant<TK_BF16, NT, true, false>(variant, s, a);
  if (resid) return gemv_variant<TK_BF16, NT, false, true>(variant, s, a);
  switch (wdt) {
    case TK_BF16: return gemv_variant<TK_BF16, NT, false, false>(variant, s, a);
    case TK_F16: return gemv_variant<TK_F16, NT, false, false>(variant, s, a);
    default: return gemv_variant<TK_F32, NT, false, false>(variant, s, a);
  }
}

extern "C" int tk_gemv_fused(void *out, int out_dt, const void *x, const void *w, int w_dt,
                             const void *bias, int bias_dt, const void *norm_w, int norm_dt,
                             float eps, int residual, int T, int N, int K, int variant,
                             tk_stream s) {
  if (T <= 0 || N <= 0 || K <= 0) return 20000;
  if (out_dt != TK_F32 && out_dt != TK_BF16) return 20000;
  if (w_dt != TK_BF16 && w_dt != TK_F16 && w_dt != TK_F32) return 20000;
  const bool norm = norm_w != nullptr, resid = residual != 0;
  if (norm && resid) return 20000;
  if ((norm || resid) && (w_dt != TK_BF16 || K % 8 != 0)) return 20000;
  if (resid && out_dt != TK_BF16) return 20000;
  if (norm && norm_dt != TK_F32 && norm_dt != TK_BF16 && norm_dt != TK_F16) return 20000;
  if (norm && (T > 8 || (size_t)T * K * 2 > TK_GEMV_NORM_SMEM_BYTES))
    return 20000;  // the normalised rows must fit the default shared memory
  cudaStream_t st = TK_STREAM(s);
  if (K % 8 != 0) {
    dim3 grid(tk_cdiv(N, kGemvWarps), tk_cdiv(T, 8));
    tk_launch(gemv_scalar_kernel<8>, grid, kGemvWarps * 32, st, out, out_dt,
              (const __nv_bfloat16 *)x, w, w_dt, bias, bias_dt, T, N, K);
    TK_LAUNCHED("gemv_scalar_kernel");
  }
  GemvArgs a{out, out_dt, (const __nv_bfloat16 *)x, w, bias, bias_dt, norm_w, norm_dt, eps,
             T, N, K};
  cudaError_t e;
  if (T == 1)
    e = gemv_dispatch<1>(w_dt, variant, norm, resid, st, a);
  else if (T == 2)
    e = gemv_dispatch<2>(w_dt, variant, norm, resid, st, a);
  else if (T <= 4)
    e = gemv_dispatch<4>(w_dt, variant, norm, resid, st, a);
  else
    e = gemv_dispatch<8>(w_dt, variant, norm, resid, st, a);
  if (e != cudaSuccess) {
    tk_note_call("cudaLaunchKernelEx(gemv_kernel)");
    return (int)e;
  }
  TK_LAUNCHED("gemv_kernel");
}

extern "C" int tk_gemv(void *out, int out_dt, const void *x, const void *w, int w_dt,
                       const void *bias, int bias_dt, int T, int N, int K, int variant,
                       tk_stream s) {
  return tk_gemv_fused(out, out_dt, x, w, w_dt, bias, bias_dt, nullptr, 0, 0.f, 0, T, N, K,
                       variant, s);
}
