// rope.cu: rotary position embedding (rotate-half / NeoX form) fused with
// the K/V cache write. Layout: qkv [T, (Hq+2Hkv)*D] bf16 holding q heads,
// then k heads, then v heads; q out [T, Hq*D] bf16; caches [slots, Hkv, D]
// bf16 (one layer). InvFreq [D/2] f32 already carries the scaling (linear,
// llama3, yarn), attn_factor multiplies cos and sin. One block per (token,
// head), one thread per rotation pair (a block per token left decode with
// one busy SM); memory-bound (qkv read once, q and K/V
// written once). Angles in float32 with sincosf (accurate variant): at
// positions in the thousands the fast __sinf drifts.
#include "common.cuh"

// Grid (token, head): heads 0..Hq-1 are q, then Hkv k heads (rotated into
// the cache), then Hkv v heads (copied); D/2 threads rotate the pairs.
__global__ void rope_write_kv_kernel(__nv_bfloat16 *q, const __nv_bfloat16 *qkv,
                                     __nv_bfloat16 *kc, __nv_bfloat16 *vc,
                                     const int32_t *positions, const int32_t *slots,
                                     const float *inv_freq, float attn, int Hq, int Hkv, int D) {
  tk_griddep_wait();
  const int t = blockIdx.x, h = blockIdx.y;
  const int half = D / 2;
  const int width = (Hq + 2 * Hkv) * D;
  const __nv_bfloat16 *src = qkv + (size_t)t * width + (size_t)h * D;
  const size_t slot = (size_t)slots[t];
  if (h >= Hq + Hkv) {
    __nv_bfloat16 *vd = vc + (slot * Hkv + (h - Hq - Hkv)) * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) vd[i] = src[i];
    return;
  }
  __nv_bfloat16 *dst = h < Hq ? q + ((size_t)t * Hq + h) * D : kc + (slot * Hkv + (h - Hq)) * D;
  const float pos = (float)positions[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float sn, cs;
    sincosf(pos * inv_freq[i], &sn, &cs);
    cs *= attn;
    sn *= attn;
    float x0 = __bfloat162float(src[i]);
    float x1 = __bfloat162float(src[i + half]);
    dst[i] = __float2bfloat16(x0 * cs - x1 * sn);
    dst[i + half] = __float2bfloat16(x1 * cs + x0 * sn);
  }
}

extern "C" int tk_rope_write_kv(void *q, const void *qkv, void *k_cache, void *v_cache,
                                const int32_t *positions, const int32_t *slots,
                                const float *inv_freq, float attn_factor, int T, int Hq,
                                int Hkv, int D, tk_stream s) {
  if (T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0 || D % 2) return 20000;
  int threads = D / 2 < 32 ? 32 : (D / 2 > 256 ? 256 : D / 2);
  tk_launch(rope_write_kv_kernel, dim3(T, Hq + 2 * Hkv), threads, TK_STREAM(s),
            (__nv_bfloat16 *)q, (const __nv_bfloat16 *)qkv, (__nv_bfloat16 *)k_cache,
            (__nv_bfloat16 *)v_cache, positions, slots, inv_freq, attn_factor, Hq, Hkv, D);
  TK_LAUNCHED("rope_write_kv_kernel");
}
