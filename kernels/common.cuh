// common.cuh: helpers shared by the kernel files (not part of the ABI).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "tokamak.h"

// tk_note_call records the name of a failing runtime call for tk_last_call.
void tk_note_call(const char *name);

// TK_CHECK returns the error code of a failing CUDA runtime call, recording its name.
#define TK_CHECK(call)                  \
  do {                                  \
    cudaError_t e_ = (call);            \
    if (e_ != cudaSuccess) {            \
      tk_note_call(#call);              \
      return (int)e_;                   \
    }                                   \
  } while (0)

// TK_LAUNCHED checks the last launch error after a kernel launch.
#define TK_LAUNCHED(name)                         \
  do {                                            \
    cudaError_t e_ = cudaGetLastError();          \
    if (e_ != cudaSuccess) {                      \
      tk_note_call(name);                         \
      return (int)e_;                             \
    }                                             \
    return 0;                                     \
  } while (0)

#define TK_STREAM(s) ((cudaStream_t)(s))

// ld_any reads element i of a small f32/bf16/f16 tensor as float (norm
// weights, biases: the branch is uniform and the data is cached).
__device__ __forceinline__ float ld_any(const void *p, int dt, size_t i) {
  if (dt == TK_F32) return ((const float *)p)[i];
  if (dt == TK_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  return __half2float(((const __half *)p)[i]);
}

__device__ __forceinline__ void st_any(void *p, int dt, size_t i, float v) {
  if (dt == TK_F32)
    ((float *)p)[i] = v;
  else if (dt == TK_BF16)
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
  else
    ((__half *)p)[i] = __float2half(v);
}

// gtime is the global timer, in ns (spin_kernel's wait, the sampler's
// block times).
__device__ __forceinline__ unsigned long long gtime() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum reduces over a block of up to 1024 threads; red holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float *red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  float t = lane < nw ? red[lane] : 0.f;
  return warp_sum(t);
}

// bf16x8 unpacks 16 bytes of bf16 into 8 floats.
__device__ __forceinline__ void bf16x8(uint4 u, float *f) {
  const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

__device__ __forceinline__ void f16x8(uint4 u, float *f) {
  const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 t = __half22float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

static inline int tk_cdiv(long long a, long long b) { return (int)((a + b - 1) / b); }

// Programmatic dependent launch (Hopper): a kernel launched with
// tk_launch may be scheduled while the previous kernel on the stream is
// still finishing; it waits here, before touching global memory, until that
// kernel's writes are visible. This hides the launch gap between the many
// small dependent kernels of a decode step (also inside CUDA graphs).
// Once past the wait it lets the next kernel launch (launch_dependents):
// that kernel's blocks take SM slots as this kernel's blocks retire and do
// their own independent work (a GEMV's first weight loads) before their
// wait. Signalling only after the wait keeps at most two kernels in flight.
__device__ __forceinline__ void tk_griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// tk_pdl_enabled is set by tk_set_pdl (default on).
extern int tk_pdl_enabled;

// tk_launch_smem launches kernel with smem bytes of dynamic shared memory,
// with programmatic dependent launch when enabled.
template <typename... KArgs, typename... Args>
static inline cudaError_t tk_launch_smem(void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                         size_t smem, cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = tk_pdl_enabled ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...);
}

template <typename... KArgs, typename... Args>
static inline cudaError_t tk_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                    cudaStream_t s, Args... args) {
  return tk_launch_smem(kernel, grid, block, 0, s, args...);
}
