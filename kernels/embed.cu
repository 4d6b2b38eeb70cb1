// embed.cu: embedding lookup and row gathers. One block per output row;
// memory-bound (one row read, one row written), tiny next to the GEMMs.
//   tk_embed:       table [vocab, D] (f32/bf16/f16) -> out [T, D] bf16
//   tk_gather_rows: x [T, D] -> out [n, D], same dtype (bf16 or f32)
#include "common.cuh"

__global__ void embed_kernel(__nv_bfloat16 *out, const void *table, int dt,
                             const int32_t *tokens, int D, int vocab) {
  tk_griddep_wait();
  int t = blockIdx.x;
  int id = tokens[t];
  __nv_bfloat16 *o = out + (size_t)t * D;
  if (id < 0 || id >= vocab) {  // out-of-range ids give a zero row, never a wild read
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = __float2bfloat16(0.f);
    return;
  }
  size_t base = (size_t)id * D;
  for (int i = threadIdx.x; i < D; i += blockDim.x)
    o[i] = __float2bfloat16(ld_any(table, dt, base + i));
}

__global__ void gather_rows_kernel(char *out, const char *x, const int32_t *rows, int row_bytes,
                                   int T) {
  tk_griddep_wait();
  int i = blockIdx.x;
  int r = rows[i];
  if (r < 0 || r >= T) r = 0;
  const char *src = x + (size_t)r * row_bytes;
  char *dst = out + (size_t)i * row_bytes;
  if ((row_bytes & 15) == 0) {
    for (int j = threadIdx.x; j < row_bytes / 16; j += blockDim.x)
      ((uint4 *)dst)[j] = ((const uint4 *)src)[j];
  } else {
    for (int j = threadIdx.x; j < row_bytes; j += blockDim.x) dst[j] = src[j];
  }
}

extern "C" int tk_embed(void *out, const void *table, int table_dt, const int32_t *tokens,
                        int T, int D, int vocab, tk_stream s) {
  if (T <= 0 || D <= 0) return 20000;
  tk_launch(embed_kernel, T, 256, TK_STREAM(s), (__nv_bfloat16 *)out, table, table_dt, tokens,
            D, vocab);
  TK_LAUNCHED("embed_kernel");
}

extern "C" int tk_gather_rows(void *out, const void *x, int dt, const int32_t *rows, int n,
                              int D, int T, tk_stream s) {
  if (n <= 0 || D <= 0) return 20000;
  int es = dt == TK_F32 ? 4 : 2;
  tk_launch(gather_rows_kernel, n, 128, TK_STREAM(s), (char *)out, (const char *)x, rows,
            D * es, T);
  TK_LAUNCHED("gather_rows_kernel");
}
