// rope.cu: rotary position embedding (rotate-half / NeoX form) fused with
// the K/V cache write. Layout: qkv [T, (Hq+2Hkv)*D] bf16 holding q heads,
// then k heads, then v heads; q out [T, Hq*D] bf16; caches [slots, Hkv, D]
// bf16 (one layer), token t's K/V at row slots[t] (any slot, in any order).
// InvFreq [D/2] f32 already carries the scaling (linear, llama3, yarn),
// attn_factor multiplies cos and sin. Angles in float32 with sincosf
// (accurate variant): at positions in the thousands the fast __sinf drifts.
//
// Memory-bound, designed against DRAM bandwidth: qkv read once, q and K/V
// written once (2·(Hq+2Hkv)·D·2 bytes per token). The accurate sincosf is
// the only real arithmetic, so each (token, pair) angle is computed once
// per group of heads, not once per head: a block is (tokens, head group);
// threadIdx.x owns kP consecutive rotation pairs (kP = 4: 8-byte accesses
// when D % 8 == 0, else 2 or 1) and threadIdx.y a token (D = 128: 16 x 8
// threads); a thread computes its kP angles once, then rotates them into
// the group's heads (up to kBatch = 8 of the q heads then k heads,
// contiguous in qkv) with all the group's loads issued before its stores.
// Hq=32, Hkv=8: 5 sincosf per (token, pair) instead of 40, a few percent
// of the issue slots at bandwidth; decode T=1 is 5 rotation blocks plus
// the V block in parallel. The last grid row copies V with 16-byte accesses
// (when D % 8 == 0; element by element otherwise). Output formulas are the
// original ones with the FMA contraction nvcc chose for them written out:
// out0 = fma(x0, cs, -(x1·sn)), out1 = fma(x0, sn, x1·cs).
#include "common.cuh"

constexpr int kBatch = 8;          // heads whose loads are in flight together
constexpr int kRopeThreads = 128;  // threads per block (pairs x tokens)
// At least 6 resident blocks an SM (<= 85 registers): without a minimum,
// ptxas 11.8 settled on 96 registers and spilled for kP = 4.
constexpr int kRopeMinBlocks = 6;

// pairs<kP> moves kP consecutive bf16 as one access: raw bits are loaded
// (no conversion next to the load, so a batch of loads stays in flight)
// and unpacked where they are used.
template <int kP>
struct pairs;
template <>
struct pairs<1> {
  using raw = unsigned short;
  __device__ static raw load(const __nv_bfloat16 *p) {
    return *reinterpret_cast<const unsigned short *>(p);
  }
  __device__ static void unpack(raw r, float *f) { f[0] = __uint_as_float((unsigned)r << 16); }
  __device__ static void store(__nv_bfloat16 *p, const float *f) { *p = __float2bfloat16(f[0]); }
};
template <>
struct pairs<2> {
  using raw = unsigned;
  __device__ static raw load(const __nv_bfloat16 *p) {
    return *reinterpret_cast<const unsigned *>(p);
  }
  __device__ static void unpack(raw r, float *f) {
    f[0] = __uint_as_float(r << 16);
    f[1] = __uint_as_float(r & 0xffff0000u);
  }
  __device__ static void store(__nv_bfloat16 *p, const float *f) {
    *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(f[0], f[1]);
  }
};
template <>
struct pairs<4> {
  using raw = uint2;
  __device__ static raw load(const __nv_bfloat16 *p) { return *reinterpret_cast<const uint2 *>(p); }
  __device__ static void unpack(raw r, float *f) {
    pairs<2>::unpack(r.x, f);
    pairs<2>::unpack(r.y, f + 2);
  }
  __device__ static void store(__nv_bfloat16 *p, const float *f) {
    uint2 o;
    __nv_bfloat162 a = __floats2bfloat162_rn(f[0], f[1]), b = __floats2bfloat162_rn(f[2], f[3]);
    o.x = *reinterpret_cast<unsigned *>(&a);
    o.y = *reinterpret_cast<unsigned *>(&b);
    *reinterpret_cast<uint2 *>(p) = o;
  }
};

// Grid (token blocks, head groups + 1): group g rotates heads [g*hpb,
// (g+1)*hpb) of the Hq+Hkv q and k heads (hpb <= kBatch); the last grid
// row copies the V heads. vvec: V moves as 16-byte vectors.
template <int kP>
__global__ void __launch_bounds__(kRopeThreads, kRopeMinBlocks)
    rope_write_kv_kernel(__nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ qkv,
                         __nv_bfloat16 *__restrict__ kc, __nv_bfloat16 *__restrict__ vc,
                         const int32_t *__restrict__ positions, const int32_t *__restrict__ slots,
                         const float *__restrict__ inv_freq, float attn, int T, int Hq, int Hkv,
                         int D, int hpb, int vvec) {
  tk_griddep_wait();
  const int t = blockIdx.x * blockDim.y + threadIdx.y;
  if (t >= T) return;
  const int R = Hq + Hkv;
  const int half = D / 2;
  const __nv_bfloat16 *row = qkv + (size_t)t * (R + Hkv) * D;
  const size_t slot = (size_t)slots[t];
  if ((int)blockIdx.y == gridDim.y - 1) {
    const int n = Hkv * D;
    const __nv_bfloat16 *src = row + (size_t)R * D;
    __nv_bfloat16 *dst = vc + slot * n;
    if (vvec) {
      const uint4 *s4 = reinterpret_cast<const uint4 *>(src);
      uint4 *d4 = reinterpret_cast<uint4 *>(dst);
      const int nv = n / 8;
      for (int v0 = threadIdx.x; v0 < nv; v0 += 4 * blockDim.x) {
        uint4 b[4];
#pragma unroll
        for (int j = 0; j < 4; j++)
          if (v0 + j * (int)blockDim.x < nv) b[j] = s4[v0 + j * blockDim.x];
#pragma unroll
        for (int j = 0; j < 4; j++)
          if (v0 + j * (int)blockDim.x < nv) d4[v0 + j * blockDim.x] = b[j];
      }
    } else {
      for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
    }
    return;
  }
  const int h0 = blockIdx.y * hpb;
  const int h1 = min(h0 + hpb, R);
  const float pos = (float)positions[t];
  // Per-token bases; offsets within a token's row fit in int.
  __nv_bfloat16 *qrow = q + (size_t)t * Hq * D;
  __nv_bfloat16 *krow = kc + slot * Hkv * D;
  for (int i = threadIdx.x * kP; i < half; i += blockDim.x * kP) {
    const __nv_bfloat16 *src = row + i;
    typename pairs<kP>::raw r0[kBatch], r1[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; j++) {
      if (h0 + j < h1) {
        const int off = (h0 + j) * D;
        r0[j] = pairs<kP>::load(src + off);
        r1[j] = pairs<kP>::load(src + off + half);
      }
    }
    // The angles are computed while the loads are in flight.
    float cs[kP], sn[kP];
#pragma unroll
    for (int p = 0; p < kP; p++) {
      sincosf(pos * inv_freq[i + p], &sn[p], &cs[p]);
      cs[p] *= attn;
      sn[p] *= attn;
    }
#pragma unroll
    for (int j = 0; j < kBatch; j++) {
      const int h = h0 + j;
      if (h < h1) {
        __nv_bfloat16 *dst = (h < Hq ? qrow + h * D : krow + (h - Hq) * D) + i;
        float x0[kP], x1[kP], y0[kP], y1[kP];
        pairs<kP>::unpack(r0[j], x0);
        pairs<kP>::unpack(r1[j], x1);
#pragma unroll
        for (int p = 0; p < kP; p++) {
          y0[p] = __fmaf_rn(x0[p], cs[p], -__fmul_rn(x1[p], sn[p]));
          y1[p] = __fmaf_rn(x0[p], sn[p], __fmul_rn(x1[p], cs[p]));
        }
        pairs<kP>::store(dst, y0);
        pairs<kP>::store(dst + half, y1);
      }
    }
  }
}

static bool rope_aligned(const void *p, int n) { return ((uintptr_t)p & (n - 1)) == 0; }

extern "C" int tk_rope_write_kv(void *q, const void *qkv, void *k_cache, void *v_cache,
                                const int32_t *positions, const int32_t *slots,
                                const float *inv_freq, float attn_factor, int T, int Hq,
                                int Hkv, int D, tk_stream s) {
  if (T <= 0 || Hq <= 0 || Hkv <= 0 || D <= 0 || D % 2) return 20000;
  const int half = D / 2;
  auto fits = [&](int n) {  // kP = n pairs per access
    return half % n == 0 && rope_aligned(q, 2 * n) && rope_aligned(qkv, 2 * n) && rope_aligned(k_cache, 2 * n);
  };
  const int kp = fits(4) ? 4 : fits(2) ? 2 : 1;
  int bx = half / kp;
  if (bx > kRopeThreads) bx = kRopeThreads;
  int by = kRopeThreads / bx;
  if (by > T) by = T;
  const int vvec = D % 8 == 0 && rope_aligned(qkv, 16) && rope_aligned(v_cache, 16);
  // Head groups of at most kBatch heads, equal sized (Hq+Hkv = 40: 5 x 8;
  // 12: 2 x 6).
  const int R = Hq + Hkv;
  const int hpb = tk_cdiv(R, tk_cdiv(R, kBatch));
  dim3 grid(tk_cdiv(T, by), tk_cdiv(R, hpb) + 1), block(bx, by);
  auto kernel = kp == 4 ? rope_write_kv_kernel<4> : kp == 2 ? rope_write_kv_kernel<2>
                                                             : rope_write_kv_kernel<1>;
  tk_launch(kernel, grid, block, TK_STREAM(s), (__nv_bfloat16 *)q, (const __nv_bfloat16 *)qkv,
            (__nv_bfloat16 *)k_cache, (__nv_bfloat16 *)v_cache, positions, slots, inv_freq,
            attn_factor, T, Hq, Hkv, D, hpb, vvec);
  TK_LAUNCHED("rope_write_kv_kernel");
}
