// norm.cu: RMSNorm, RMSNorm fused with the residual add, and per-head
// RMSNorm (Qwen3 q/k norm). Layout: rows of D bf16 elements, one block per
// row; weights f32/bf16/f16 of [D] (or [head_dim]). Memory-bound: the fused
// add reads x and residual once, writes residual and out once (8 bytes per
// element), with the sum of squares in float32 from the rounded residual so
// that it matches what the next layer reads.
#include "common.cuh"

// Rows up to kMaxPer*blockDim elements are held in registers between the
// reduction and the scaling pass; longer rows are read twice.
constexpr int kThreads = 256;
constexpr int kMaxPer = 32;  // 8192 elements per row in registers

template <bool kAdd>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(__nv_bfloat16 *out,
                                                           __nv_bfloat16 *residual,
                                                           const __nv_bfloat16 *x,
                                                           const void *w, int wdt, int D,
                                                           float eps) {
  tk_griddep_wait();
  __shared__ float red[32];
  size_t base = (size_t)blockIdx.x * D;
  float v[kMaxPer];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kMaxPer; k++) {
    int i = threadIdx.x + k * kThreads;
    if (i < D) {
      float a = __bfloat162float(x[base + i]);
      if (kAdd) {
        a += __bfloat162float(residual[base + i]);
        __nv_bfloat16 r = __float2bfloat16(a);
        residual[base + i] = r;
        a = __bfloat162float(r);
      }
      v[k] = a;
      ss += a * a;
    }
  }
  for (int i = threadIdx.x + kMaxPer * kThreads; i < D; i += kThreads) {
    float a = __bfloat162float(x[base + i]);
    if (kAdd) {
      a += __bfloat162float(residual[base + i]);
      __nv_bfloat16 r = __float2bfloat16(a);
      residual[base + i] = r;
      a = __bfloat162float(r);
    }
    ss += a * a;
  }
  float tot = block_sum(ss, red);
  float inv = rsqrtf(tot / (float)D + eps);
#pragma unroll
  for (int k = 0; k < kMaxPer; k++) {
    int i = threadIdx.x + k * kThreads;
    if (i < D) out[base + i] = __float2bfloat16(v[k] * inv * ld_any(w, wdt, i));
  }
  for (int i = threadIdx.x + kMaxPer * kThreads; i < D; i += kThreads) {
    float a = __bfloat162float(kAdd ? residual[base + i] : x[base + i]);
    out[base + i] = __float2bfloat16(a * inv * ld_any(w, wdt, i));
  }
}

// One warp per (row, head); head_dim up to 32*8 in registers.
__global__ void head_rmsnorm_kernel(__nv_bfloat16 *x, int rows, int cols, int col_start,
                                    int heads, int hd, const void *w, int wdt, float eps) {
  tk_griddep_wait();
  int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (warp >= rows * heads) return;
  int r = warp / heads, h = warp % heads;
  __nv_bfloat16 *p = x + (size_t)r * cols + col_start + (size_t)h * hd;
  float v[8];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < 8; k++) {
    int i = lane + 32 * k;
    v[k] = i < hd ? __bfloat162float(p[i]) : 0.f;
    ss += v[k] * v[k];
  }
  ss = warp_sum(ss);
  float inv = rsqrtf(ss / (float)hd + eps);
#pragma unroll
  for (int k = 0; k < 8; k++) {
    int i = lane + 32 * k;
    if (i < hd) p[i] = __float2bfloat16(v[k] * inv * ld_any(w, wdt, i));
  }
}

extern "C" int tk_rmsnorm(void *out, const void *x, const void *w, int w_dt, int rows, int D,
                          float eps, tk_stream s) {
  if (rows <= 0 || D <= 0) return 20000;
  tk_launch(rmsnorm_kernel<false>, rows, kThreads, TK_STREAM(s), (__nv_bfloat16 *)out,
            (__nv_bfloat16 *)nullptr, (const __nv_bfloat16 *)x, w, w_dt, D, eps);
  TK_LAUNCHED("rmsnorm_kernel");
}

extern "C" int tk_add_rmsnorm(void *out, void *residual, const void *x, const void *w,
                              int w_dt, int rows, int D, float eps, tk_stream s) {
  if (rows <= 0 || D <= 0) return 20000;
  tk_launch(rmsnorm_kernel<true>, rows, kThreads, TK_STREAM(s), (__nv_bfloat16 *)out,
            (__nv_bfloat16 *)residual, (const __nv_bfloat16 *)x, w, w_dt, D, eps);
  TK_LAUNCHED("add_rmsnorm_kernel");
}

extern "C" int tk_head_rmsnorm(void *x, int rows, int cols, int col_start, int heads,
                               int head_dim, const void *w, int w_dt, float eps, tk_stream s) {
  if (rows <= 0 || heads <= 0 || head_dim <= 0 || head_dim > 256) return 20000;
  int warps = rows * heads;
  int threads = 128;
  int blocks = tk_cdiv((long long)warps * 32, threads);
  tk_launch(head_rmsnorm_kernel, blocks, threads, TK_STREAM(s), (__nv_bfloat16 *)x, rows, cols,
            col_start, heads, head_dim, w, w_dt, eps);
  TK_LAUNCHED("head_rmsnorm_kernel");
}
