// activation.cu: SiLU(gate)·up over the fused gate_up projection, and a
// bias add for GEMMs that have one. Layout: gu [T, 2I] bf16 (gate columns
// then up columns), out [T, I] bf16. Memory-bound: 4 bytes read and 2
// written per output element; pairs of elements per thread.
#include "common.cuh"

__global__ void silu_mul_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gu, int T, int I) {
  tk_griddep_wait();
  size_t n = (size_t)T * I;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
       e += (size_t)gridDim.x * blockDim.x) {
    size_t r = e / I, i = e % I;
    float g = __bfloat162float(gu[r * 2 * I + i]);
    float u = __bfloat162float(gu[r * 2 * I + I + i]);
    out[e] = __float2bfloat16(g / (1.f + __expf(-g)) * u);
  }
}

__global__ void add_bias_kernel(void *out, int odt, const void *bias, int bdt, int T, int N) {
  tk_griddep_wait();
  size_t n = (size_t)T * N;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
       e += (size_t)gridDim.x * blockDim.x)
    st_any(out, odt, e, ld_any(out, odt, e) + ld_any(bias, bdt, e % N));
}

static int grid_for(size_t n) {
  size_t g = (n + 255) / 256;
  if (g > 8192) g = 8192;
  if (g < 1) g = 1;
  return (int)g;
}

extern "C" int tk_silu_mul(void *out, const void *gu, int T, int I, tk_stream s) {
  if (T <= 0 || I <= 0) return 20000;
  tk_launch(silu_mul_kernel, grid_for((size_t)T * I), 256, TK_STREAM(s), (__nv_bfloat16 *)out,
            (const __nv_bfloat16 *)gu, T, I);
  TK_LAUNCHED("silu_mul_kernel");
}

extern "C" int tk_add_bias(void *out, int out_dt, const void *bias, int bias_dt, int T, int N,
                           tk_stream s) {
  if (T <= 0 || N <= 0) return 20000;
  tk_launch(add_bias_kernel, grid_for((size_t)T * N), 256, TK_STREAM(s), out, out_dt, bias,
            bias_dt, T, N);
  TK_LAUNCHED("add_bias_kernel");
}
