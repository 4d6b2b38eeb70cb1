// util.cu: device-side fills and dtype conversion. Memory-bound: one write
// (fills) or one read and one write (convert) per element. Used to make
// random weights on the device for benchmarks (no host round trip for
// gigabytes) and to poison outputs in tests.
#include "common.cuh"

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void fill_random_kernel(void *p, int dt, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    uint64_t h = splitmix64(seed * 0x2545F4914F6CDD1Dull + i);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    st_any(p, dt, i, (2.f * u - 1.f) * scale);
  }
}

__global__ void fill_const_kernel(void *p, int dt, size_t n, float v) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    st_any(p, dt, i, v);
}

__global__ void convert_kernel(void *dst, int ddt, const void *src, int sdt, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    st_any(dst, ddt, i, ld_any(src, sdt, i));
}

static int grid_for(size_t n) {
  size_t g = (n + 255) / 256;
  if (g > 65535) g = 65535;
  if (g < 1) g = 1;
  return (int)g;
}

static bool float_dt(int dt) { return dt == TK_F32 || dt == TK_BF16 || dt == TK_F16; }

extern "C" int tk_fill_random(void *p, int dt, size_t n, uint64_t seed, float scale,
                              tk_stream s) {
  if (!float_dt(dt)) return 20000;
  if (n == 0) return 0;
  fill_random_kernel<<<grid_for(n), 256, 0, TK_STREAM(s)>>>(p, dt, n, seed, scale);
  TK_LAUNCHED("fill_random_kernel");
}

// spin_kernel holds its stream for ns nanoseconds of the global timer
// (one thread): timing queues the kernel it times behind it.
__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long t0 = gtime();
  do __nanosleep(1000);
  while (gtime() - t0 < ns);
}

extern "C" int tk_spin(uint64_t ns, tk_stream s) {
  if (ns > 1000000000ull) return 20000;  // a second at most
  spin_kernel<<<1, 1, 0, TK_STREAM(s)>>>(ns);
  TK_LAUNCHED("spin_kernel");
}

extern "C" int tk_fill_const(void *p, int dt, size_t n, float value, tk_stream s) {
  if (!float_dt(dt)) return 20000;
  if (n == 0) return 0;
  fill_const_kernel<<<grid_for(n), 256, 0, TK_STREAM(s)>>>(p, dt, n, value);
  TK_LAUNCHED("fill_const_kernel");
}

extern "C" int tk_convert(void *dst, int dst_dt, const void *src, int src_dt, size_t n,
                          tk_stream s) {
  if (!float_dt(dst_dt) || !float_dt(src_dt)) return 20000;
  if (n == 0) return 0;
  convert_kernel<<<grid_for(n), 256, 0, TK_STREAM(s)>>>(dst, dst_dt, src, src_dt, n);
  TK_LAUNCHED("convert_kernel");
}
