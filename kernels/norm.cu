// norm.cu: RMSNorm, RMSNorm fused with the residual add, and per-head
// RMSNorm (Qwen3 q/k norm). Layout: rows of D bf16 elements, one block per
// row; weights f32/bf16/f16 of [D] (or [head_dim]). Memory-bound, designed
// against DRAM bandwidth: the fused add reads x and residual once, writes
// residual and out once (8 bytes per element; the plain norm 4), with the
// sum of squares in float32 from the rounded residual so that it matches
// what the next layer reads.
//
// Fast path (D % 8 == 0, 16-byte aligned rows): each thread moves 16-byte
// vectors (8 bf16), issues all its loads of the row before any store, and
// keeps its part of the row in registers as packed bf16 (x, or the rounded
// residual: exactly the values the scaling pass needs) for rows of up to
// kVecPer*kThreads*8 = 8192 elements; longer rows re-read the rest after the
// reduction. Pointers are __restrict__ (out, residual and x never alias), so
// the residual store does not serialise the loads behind it. The block
// has D/8/kVecPer threads (a warp at least, kThreads at most), so a 4096
// row is 128 threads of 4 vectors each. Any other D (or alignment) takes the
// scalar path. Both compute out = bf16(v * inv * w) with inv = rsqrtf(ss/D +
// eps) and, for the add, residual = bf16(x + residual); only the order of
// the sum of squares differs between them (deterministic, no atomics).
#include "common.cuh"

constexpr int kThreads = 256;
constexpr int kVecPer = 4;  // 16-byte vectors per thread kept in registers
constexpr int kMaxPer = 32;  // scalar path: 8192 elements per row in registers

// ld_w8 reads weights i..i+7 as float: 16-byte loads when vec (the weight
// is 16-byte aligned), else element by element.
__device__ __forceinline__ void ld_w8(const void *__restrict__ w, int wdt, bool vec, int i,
                                      float *f) {
  if (vec) {
    if (wdt == TK_F32) {
      const float4 *p = reinterpret_cast<const float4 *>(static_cast<const float *>(w) + i);
      float4 a = p[0], b = p[1];
      f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
      f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    } else if (wdt == TK_BF16) {
      bf16x8(*reinterpret_cast<const uint4 *>(static_cast<const __nv_bfloat16 *>(w) + i), f);
    } else {
      f16x8(*reinterpret_cast<const uint4 *>(static_cast<const __half *>(w) + i), f);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < 8; j++) f[j] = ld_any(w, wdt, i + j);
}

// add_round8 returns bf16(x + r) for 8 packed pairs: the new residual.
__device__ __forceinline__ uint4 add_round8(uint4 x, uint4 r) {
  float a[8], b[8];
  bf16x8(x, a);
  bf16x8(r, b);
  uint4 o;
  __nv_bfloat162 *oh = reinterpret_cast<__nv_bfloat162 *>(&o);
#pragma unroll
  for (int k = 0; k < 4; k++) oh[k] = __floats2bfloat162_rn(a[2 * k] + b[2 * k], a[2 * k + 1] + b[2 * k + 1]);
  return o;
}

__device__ __forceinline__ float sumsq8(uint4 h, float ss) {
  float a[8];
  bf16x8(h, a);
#pragma unroll
  for (int j = 0; j < 8; j++) ss += a[j] * a[j];
  return ss;
}

// scale8 returns bf16(v * inv * w) for the 8 values of h.
__device__ __forceinline__ uint4 scale8(uint4 h, float inv, const float *w) {
  float a[8];
  bf16x8(h, a);
  uint4 o;
  __nv_bfloat162 *oh = reinterpret_cast<__nv_bfloat162 *>(&o);
#pragma unroll
  for (int k = 0; k < 4; k++)
    oh[k] = __floats2bfloat162_rn(a[2 * k] * inv * w[2 * k], a[2 * k + 1] * inv * w[2 * k + 1]);
  return o;
}

template <bool kAdd>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_vec_kernel(__nv_bfloat16 *__restrict__ out, __nv_bfloat16 *__restrict__ residual,
                       const __nv_bfloat16 *__restrict__ x, const void *__restrict__ w, int wdt,
                       int wvec, int D, float eps) {
  tk_griddep_wait();
  __shared__ float red[32];
  const int nvec = D >> 3;
  const size_t base = (size_t)blockIdx.x * nvec;
  const uint4 *xv = reinterpret_cast<const uint4 *>(x) + base;
  uint4 *rv = kAdd ? reinterpret_cast<uint4 *>(residual) + base : nullptr;
  uint4 *ov = reinterpret_cast<uint4 *>(out) + base;
  const int nt = blockDim.x;
  uint4 h[kVecPer], r[kVecPer];
#pragma unroll
  for (int k = 0; k < kVecPer; k++) {
    int v = threadIdx.x + k * nt;
    if (v < nvec) {
      h[k] = xv[v];
      if (kAdd) r[k] = rv[v];
    }
  }
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kVecPer; k++) {
    int v = threadIdx.x + k * nt;
    if (v < nvec) {
      if (kAdd) {
        h[k] = add_round8(h[k], r[k]);
        rv[v] = h[k];
      }
      ss = sumsq8(h[k], ss);
    }
  }
  // Rows longer than the register-held part: stream the rest.
  for (int v = threadIdx.x + kVecPer * nt; v < nvec; v += nt) {
    uint4 a = xv[v];
    if (kAdd) {
      a = add_round8(a, rv[v]);
      rv[v] = a;
    }
    ss = sumsq8(a, ss);
  }
  float tot = block_sum(ss, red);
  float inv = rsqrtf(tot / (float)D + eps);
#pragma unroll
  for (int k = 0; k < kVecPer; k++) {
    int v = threadIdx.x + k * nt;
    if (v < nvec) {
      float wf[8];
      ld_w8(w, wdt, wvec, v * 8, wf);
      ov[v] = scale8(h[k], inv, wf);
    }
  }
  for (int v = threadIdx.x + kVecPer * nt; v < nvec; v += nt) {
    uint4 a = kAdd ? rv[v] : xv[v];
    float wf[8];
    ld_w8(w, wdt, wvec, v * 8, wf);
    ov[v] = scale8(a, inv, wf);
  }
}

// Scalar path: any D, element by element.
template <bool kAdd>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(__nv_bfloat16 *__restrict__ out,
                                                           __nv_bfloat16 *__restrict__ residual,
                                                           const __nv_bfloat16 *__restrict__ x,
                                                           const void *__restrict__ w, int wdt,
                                                           int D, float eps) {
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

static bool norm_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// launch_norm runs the vector kernel where D and the pointers allow it.
template <bool kAdd>
static int launch_norm(void *out, void *residual, const void *x, const void *w, int w_dt,
                       int rows, int D, float eps, tk_stream s) {
  if (rows <= 0 || D <= 0) return 20000;
  if (D % 8 == 0 && norm_aligned16(out) && norm_aligned16(x) && (!kAdd || norm_aligned16(residual))) {
    int nvec = D / 8;
    int threads = (tk_cdiv(nvec, kVecPer) + 31) / 32 * 32;
    if (threads > kThreads) threads = kThreads;
    int wvec = norm_aligned16(w) ? 1 : 0;
    tk_launch(rmsnorm_vec_kernel<kAdd>, rows, threads, TK_STREAM(s), (__nv_bfloat16 *)out,
              (__nv_bfloat16 *)residual, (const __nv_bfloat16 *)x, w, w_dt, wvec, D, eps);
    TK_LAUNCHED(kAdd ? "add_rmsnorm_vec_kernel" : "rmsnorm_vec_kernel");
  }
  tk_launch(rmsnorm_kernel<kAdd>, rows, kThreads, TK_STREAM(s), (__nv_bfloat16 *)out,
            (__nv_bfloat16 *)residual, (const __nv_bfloat16 *)x, w, w_dt, D, eps);
  TK_LAUNCHED(kAdd ? "add_rmsnorm_kernel" : "rmsnorm_kernel");
}

extern "C" int tk_rmsnorm(void *out, const void *x, const void *w, int w_dt, int rows, int D,
                          float eps, tk_stream s) {
  return launch_norm<false>(out, nullptr, x, w, w_dt, rows, D, eps, s);
}

extern "C" int tk_add_rmsnorm(void *out, void *residual, const void *x, const void *w,
                              int w_dt, int rows, int D, float eps, tk_stream s) {
  return launch_norm<true>(out, residual, x, w, w_dt, rows, D, eps, s);
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
