// activation.cu: SiLU(gate)·up over the fused gate_up projection, and a
// bias add for GEMMs that have one. Layout: gu [T, 2I] bf16 (gate columns
// then up columns), out [T, I] bf16; add_bias: out [T, N] f32/bf16 += bias
// [N]. Memory-bound: SiLU·mul reads 4 bytes and writes 2 per output element
// (designed against DRAM bandwidth: 6·T·I bytes per call); the bias add
// reads and writes out once.
//
// Shape of the kernels: a 2-D grid (column blocks, row groups), so a
// thread's column is fixed and no element index is ever divided by I or N
// (a 64-bit division per element cost more than the memory traffic). When
// I % 8 == 0 and the pointers are 16-byte aligned, a thread moves 8 gate
// and 8 up values with two 16-byte loads and writes 8 outputs with one
// 16-byte store; each thread handles kRows rows with all their loads issued
// before any store, so enough bytes are in flight per SM. Otherwise a
// scalar path of the same shape. The formula is the same in both paths and
// as before: bf16(g / (1 + __expf(-g)) * u), rounded once.
#include "common.cuh"

constexpr int kActThreads = 128;
constexpr int kRows = 4;          // rows per thread, loads batched before stores
constexpr int kMaxGridY = 65535;  // gridDim.y limit; larger T loops

__device__ __forceinline__ float silu_mul1(float g, float u) {
  return g / (1.f + __expf(-g)) * u;
}

// Vector path: column c is the c-th group of 8 outputs of a row.
__global__ void __launch_bounds__(kActThreads)
    silu_mul_vec_kernel(__nv_bfloat16 *__restrict__ out, const __nv_bfloat16 *__restrict__ gu,
                        int T, int I) {
  tk_griddep_wait();
  const int nvec = I >> 3;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= nvec) return;
  const uint4 *src = reinterpret_cast<const uint4 *>(gu) + c;  // row r: + r * 2 * nvec
  uint4 *dst = reinterpret_cast<uint4 *>(out) + c;             // row r: + r * nvec
  for (int r0 = blockIdx.y * kRows; r0 < T; r0 += gridDim.y * kRows) {
    uint4 g[kRows], u[kRows];
#pragma unroll
    for (int j = 0; j < kRows; j++) {
      if (r0 + j < T) {
        const uint4 *p = src + (size_t)(r0 + j) * 2 * nvec;
        g[j] = p[0];
        u[j] = p[nvec];
      }
    }
#pragma unroll
    for (int j = 0; j < kRows; j++) {
      if (r0 + j < T) {
        float gf[8], uf[8];
        bf16x8(g[j], gf);
        bf16x8(u[j], uf);
        uint4 o;
        __nv_bfloat162 *oh = reinterpret_cast<__nv_bfloat162 *>(&o);
#pragma unroll
        for (int k = 0; k < 4; k++)
          oh[k] = __floats2bfloat162_rn(silu_mul1(gf[2 * k], uf[2 * k]),
                                        silu_mul1(gf[2 * k + 1], uf[2 * k + 1]));
        dst[(size_t)(r0 + j) * nvec] = o;
      }
    }
  }
}

// Scalar path (I % 8 != 0 or unaligned pointers): one element per thread per row.
__global__ void __launch_bounds__(kActThreads)
    silu_mul_kernel(__nv_bfloat16 *__restrict__ out, const __nv_bfloat16 *__restrict__ gu, int T,
                    int I) {
  tk_griddep_wait();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= I) return;
  for (int r0 = blockIdx.y * kRows; r0 < T; r0 += gridDim.y * kRows) {
    float g[kRows], u[kRows];
#pragma unroll
    for (int j = 0; j < kRows; j++) {
      if (r0 + j < T) {
        const __nv_bfloat16 *p = gu + (size_t)(r0 + j) * 2 * I + i;
        g[j] = __bfloat162float(p[0]);
        u[j] = __bfloat162float(p[I]);
      }
    }
#pragma unroll
    for (int j = 0; j < kRows; j++)
      if (r0 + j < T) out[(size_t)(r0 + j) * I + i] = __float2bfloat16(silu_mul1(g[j], u[j]));
  }
}

// out[r, c] += bias[c]: a thread owns column c (bias read once) and kRows
// rows at a time, loads before stores.
__global__ void __launch_bounds__(kActThreads)
    add_bias_kernel(void *__restrict__ out, int odt, const void *__restrict__ bias, int bdt, int T,
                    int N) {
  tk_griddep_wait();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= N) return;
  const float b = ld_any(bias, bdt, c);
  for (int r0 = blockIdx.y * kRows; r0 < T; r0 += gridDim.y * kRows) {
    float v[kRows];
#pragma unroll
    for (int j = 0; j < kRows; j++)
      if (r0 + j < T) v[j] = ld_any(out, odt, (size_t)(r0 + j) * N + c);
#pragma unroll
    for (int j = 0; j < kRows; j++)
      if (r0 + j < T) st_any(out, odt, (size_t)(r0 + j) * N + c, v[j] + b);
  }
}

// grid2d covers cols columns with kActThreads-thread blocks and T rows in
// groups of kRows (rows beyond kMaxGridY groups loop in the kernel).
static dim3 grid2d(int cols, int T) {
  int gy = tk_cdiv(T, kRows);
  if (gy > kMaxGridY) gy = kMaxGridY;
  return dim3(tk_cdiv(cols, kActThreads), gy);
}

static bool act_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int tk_silu_mul(void *out, const void *gu, int T, int I, tk_stream s) {
  if (T <= 0 || I <= 0) return 20000;
  if (I % 8 == 0 && act_aligned16(out) && act_aligned16(gu)) {
    tk_launch(silu_mul_vec_kernel, grid2d(I / 8, T), kActThreads, TK_STREAM(s),
              (__nv_bfloat16 *)out, (const __nv_bfloat16 *)gu, T, I);
    TK_LAUNCHED("silu_mul_vec_kernel");
  }
  tk_launch(silu_mul_kernel, grid2d(I, T), kActThreads, TK_STREAM(s), (__nv_bfloat16 *)out,
            (const __nv_bfloat16 *)gu, T, I);
  TK_LAUNCHED("silu_mul_kernel");
}

extern "C" int tk_add_bias(void *out, int out_dt, const void *bias, int bias_dt, int T, int N,
                           tk_stream s) {
  if (T <= 0 || N <= 0) return 20000;
  tk_launch(add_bias_kernel, grid2d(N, T), kActThreads, TK_STREAM(s), out, out_dt, bias, bias_dt,
            T, N);
  TK_LAUNCHED("add_bias_kernel");
}
