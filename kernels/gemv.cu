// gemv.cu: out[T, N] = x[T, K] · W[N, K]ᵀ (+bias) for small T (decode).
//
// Decode is bound by reading W once: N*K*2 bytes for bf16. One warp per
// output row streams that row with 16-byte loads (8 elements per lane per
// step), four steps in flight per lane before the first multiply, and
// applies each loaded W chunk to up to NT tokens (x rows come from L1/L2,
// shared by every warp). float32 accumulation, one warp reduction per
// output. W may be bf16, f16 or f32 (f32: two 16-byte loads per step); a
// scalar variant handles K not divisible by 8.
#include "common.cuh"

constexpr int kGemvWarps = 8;  // scalar kernel

template <int WT>
__device__ __forceinline__ void load_w8(const void *w, size_t idx, float *f) {
  if (WT == TK_BF16) {
    bf16x8(__ldg(reinterpret_cast<const uint4 *>((const __nv_bfloat16 *)w + idx)), f);
  } else if (WT == TK_F16) {
    f16x8(__ldg(reinterpret_cast<const uint4 *>((const __half *)w + idx)), f);
  } else {
    const float4 *p = reinterpret_cast<const float4 *>((const float *)w + idx);
    float4 a = __ldg(p), b = __ldg(p + 1);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  }
}

template <int WT, int NT, int kSteps, int kWarps>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(
    void *out, int odt, const __nv_bfloat16 *__restrict__ x, const void *__restrict__ w,
    const void *bias, int bdt, int T, int N, int K) {
  tk_griddep_wait();
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (row >= N) return;
  const int t0 = blockIdx.y * NT;
  const int nt = min(NT, T - t0);
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  const size_t wbase = (size_t)row * K;
  for (int c0 = lane * 8; c0 < K; c0 += 32 * 8 * kSteps) {
    float wf[kSteps][8];
#pragma unroll
    for (int s = 0; s < kSteps; s++) {
      int c = c0 + s * 256;
      if (c < K) {
        load_w8<WT>(w, wbase + c, wf[s]);
      } else {
#pragma unroll
        for (int j = 0; j < 8; j++) wf[s][j] = 0.f;
      }
    }
#pragma unroll
    for (int s = 0; s < kSteps; s++) {
      int c = c0 + s * 256;
      if (c >= K) break;
#pragma unroll
      for (int t = 0; t < NT; t++) {
        if (t < nt) {
          float xf[8];
          bf16x8(__ldg(reinterpret_cast<const uint4 *>(x + (size_t)(t0 + t) * K + c)), xf);
          float a = acc[t];
#pragma unroll
          for (int j = 0; j < 8; j++) a = fmaf(wf[s][j], xf[j], a);
          acc[t] = a;
        }
      }
    }
  }
  float b = bias ? ld_any(bias, bdt, row) : 0.f;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    float v = warp_sum(acc[t]);
    if (lane == 0 && t < nt) st_any(out, odt, (size_t)(t0 + t) * N + row, v + b);
  }
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

template <int WT, int NT, int kSteps, int kWarps>
static void gemv_launch(cudaStream_t s, void *out, int odt, const void *x, const void *w,
                        const void *bias, int bdt, int T, int N, int K) {
  dim3 grid(tk_cdiv(N, kWarps), tk_cdiv(T, NT));
  tk_launch(gemv_kernel<WT, NT, kSteps, kWarps>, grid, kWarps * 32, s, out, odt,
            (const __nv_bfloat16 *)x, w, bias, bdt, T, N, K);
}

// Variants (loads in flight per lane, warps per block), chosen by the
// caller; 0 is the default. Measured on H100, Llama-3.1-8B decode matmuls
// (graph, ms/step): (4,8) 6.18, (8,4) 6.59, (8,8) 6.64, (2,4) 5.15: small
// blocks spread rows more evenly over the SMs than deep pipelines help.
template <int WT, int NT>
static void gemv_variant(int variant, cudaStream_t s, void *out, int odt, const void *x,
                         const void *w, const void *bias, int bdt, int T, int N, int K) {
  switch (variant) {
    case 1: gemv_launch<WT, NT, 4, 4>(s, out, odt, x, w, bias, bdt, T, N, K); break;
    case 2: gemv_launch<WT, NT, 2, 2>(s, out, odt, x, w, bias, bdt, T, N, K); break;
    case 3: gemv_launch<WT, NT, 1, 4>(s, out, odt, x, w, bias, bdt, T, N, K); break;
    default: gemv_launch<WT, NT, 2, 4>(s, out, odt, x, w, bias, bdt, T, N, K); break;
  }
}

template <int WT>
static void gemv_nt(int variant, cudaStream_t s, void *out, int odt, const void *x,
                    const void *w, const void *bias, int bdt, int T, int N, int K) {
  if (T == 1)
    gemv_variant<WT, 1>(variant, s, out, odt, x, w, bias, bdt, T, N, K);
  else if (T == 2)
    gemv_variant<WT, 2>(variant, s, out, odt, x, w, bias, bdt, T, N, K);
  else if (T <= 4)
    gemv_variant<WT, 4>(variant, s, out, odt, x, w, bias, bdt, T, N, K);
  else
    gemv_variant<WT, 8>(variant, s, out, odt, x, w, bias, bdt, T, N, K);
}

extern "C" int tk_gemv(void *out, int out_dt, const void *x, const void *w, int w_dt,
                       const void *bias, int bias_dt, int T, int N, int K, int variant,
                       tk_stream s) {
  if (T <= 0 || N <= 0 || K <= 0) return 20000;
  if (out_dt != TK_F32 && out_dt != TK_BF16) return 20000;
  cudaStream_t st = TK_STREAM(s);
  if (K % 8 == 0) {
    switch (w_dt) {
      case TK_BF16: gemv_nt<TK_BF16>(variant, st, out, out_dt, x, w, bias, bias_dt, T, N, K); break;
      case TK_F16: gemv_nt<TK_F16>(variant, st, out, out_dt, x, w, bias, bias_dt, T, N, K); break;
      case TK_F32: gemv_nt<TK_F32>(variant, st, out, out_dt, x, w, bias, bias_dt, T, N, K); break;
      default: return 20000;
    }
  } else {
    dim3 grid(tk_cdiv(N, kGemvWarps), tk_cdiv(T, 8));
    tk_launch(gemv_scalar_kernel<8>, grid, kGemvWarps * 32, st, out, out_dt,
              (const __nv_bfloat16 *)x, w, w_dt, bias, bias_dt, T, N, K);
  }
  TK_LAUNCHED("gemv_kernel");
}
