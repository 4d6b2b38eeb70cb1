// rope.cu: rotary position embedding (rotate-half / NeoX form) fused with
// the K/V cache write. Layout: qkv [T, (Hq+2Hkv)*D] bf16 holding q heads,
// then k heads, then v heads; q out [T, Hq*D] bf16; caches [slots, Hkv, D]
// bf16 (one layer). InvFreq [D/2] f32 already carries the scaling (linear,
// llama3, yarn), attn_factor multiplies cos and sin. One block per token,
// one thread per rotation pair; memory-bound (qkv read once, q and K/V
// written once). Angles in float32 with sincosf (accurate variant): at
// positions in the thousands the fast __sinf drifts.
#include "common.cuh"

__global__ void rope_write_kv_kernel(__nv_bfloat16 *q, const __nv_bfloat16 *qkv,
                                     __nv_bfloat16 *kc, __nv_bfloat16 *vc,
                                     const int32_t *positions, const int32_t *slots,
                                     const float *inv_freq, float attn, int Hq, int Hkv, int D) {
  int t = blockIdx.x;
  int half = D / 2;
  int width = (Hq + 2 * Hkv) * D;
  const __nv_bfloat16 *row = qkv + (size_t)t * width;
  float pos = (float)positions[t];
  size_t slot = (size_t)slots[t];
  // rotated heads: Hq q heads then Hkv k heads
  for (int u = threadIdx.x; u < (Hq + Hkv) * half; u += blockDim.x) {
    int h = u / half, i = u % half;
    float sn, cs;
    sincosf(pos * inv_freq[i], &sn, &cs);
    cs *= attn;
    sn *= attn;
    float x0 = __bfloat162float(row[h * D + i]);
    float x1 = __bfloat162float(row[h * D + i + half]);
    __nv_bfloat16 y0 = __float2bfloat16(x0 * cs - x1 * sn);
    __nv_bfloat16 y1 = __float2bfloat16(x1 * cs + x0 * sn);
    if (h < Hq) {
      __nv_bfloat16 *dst = q + ((size_t)t * Hq + h) * D;
      dst[i] = y0;
      dst[i + half] = y1;
    } else {
      __nv_bfloat16 *dst = kc + (slot * Hkv + (h - Hq)) * D;
      dst[i] = y0;
      dst[i + half] = y1;
    }
  }
  const __nv_bfloat16 *v = row + (size_t)(Hq + Hkv) * D;
  __nv_bfloat16 *vd = vc + slot * Hkv * D;
  for (int i = threadIdx.x; i < Hkv * D; i += blockDim.x) vd[i] = v[i];
}

extern "C" int tk_rope_write_kv(void *q, const void *qkv, void *k_cache, void *v_cache,
                                const int32_t *positions, const int32_t *slots,
                                const float *inv_freq, float attn_factor, int T, int Hq,
                                int Hkv, int D, tk_stream s) {
  if (T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0 || D % 2) return 20000;
  rope_write_kv_kernel<<<T, 256, 0, TK_STREAM(s)>>>(
      (__nv_bfloat16 *)q, (const __nv_bfloat16 *)qkv, (__nv_bfloat16 *)k_cache,
      (__nv_bfloat16 *)v_cache, positions, slots, inv_freq, attn_factor, Hq, Hkv, D);
  TK_LAUNCHED("rope_write_kv_kernel");
}
