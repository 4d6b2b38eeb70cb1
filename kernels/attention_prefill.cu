// attention_prefill.cu: tensor-core flash attention for prefill rows (many
// query tokens of one sequence), causal, paged, GQA: the first prefill
// kernel, now variant 3 (TOKAMAK_ATTN_VARIANT, see attention.cu) and the
// fallback for groups of more than 128 query heads; the default is
// attention_prefill_gqa.cu.
//
// Layout as in attention_decode.cu. Grid: (window of 16·NW rows, query
// head), NW = 4 or 8 warps. A window's rows are cut into runs of one
// sequence (a chunked prefill is usually one run; a mixed batch has
// several); each run is a tile of up to 16·NW query rows, 16 per warp. The tile's keys 0..max position stream through
// shared memory in tiles of 64 (cp.async, two stages, gathered through the
// block table); S = Q·Kᵀ and O += P·V run on mma.sync m16n8k16 (bf16 in,
// float32 accumulate) with an online softmax in log2 units; the causal mask
// is applied per row, and a warp skips key tiles that none of its rows see.
// Bound: FLOPs (4·D per visible (row, key) pair per head); the K/V re-reads
// across windows and the query heads of a group mostly hit L2.
#include <math.h>

#include "attention.cuh"

namespace {

constexpr int kBN = 64;  // keys per tile (query rows per tile: 16 per warp)

template <int D, int NW>
constexpr size_t prefill_smem() {
  constexpr int kBM = 16 * NW;
  // Q tile + two stages of K and V tiles, rows padded by 16 bytes so that
  // ldmatrix's 8 row addresses fall in distinct banks
  return (size_t)(kBM + 4 * kBN) * (D + 8) * sizeof(__nv_bfloat16);
}

template <int D, int NW>
__global__ void __launch_bounds__(NW * 32) attn_prefill_kernel(AttnArgs a, int only_multi) {
  constexpr int kBM = 16 * NW, kThreads = NW * 32;
  constexpr int LD = D + 8;  // shared row stride in elements
  constexpr int CH = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(smem);
  __nv_bfloat16 *sK = sQ + kBM * LD;
  __nv_bfloat16 *sV = sK + 2 * kBN * LD;
  __shared__ int s_pos[kBM];
  tk_griddep_wait();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int h = blockIdx.y;
  const int kvh = h / (a.Hq / a.Hkv);
  // the last windows see the longest prefixes: start them first
  const int w0 = (gridDim.x - 1 - blockIdx.x) * kBM;
  const int w1 = min(a.T, w0 + kBM);
  const float sl2 = a.scale * kLog2e;
  const long long stride = (long long)a.Hkv * D;
  const __nv_bfloat16 *kh = a.kc + (size_t)kvh * D;
  const __nv_bfloat16 *vh = a.vc + (size_t)kvh * D;

  for (int r0 = w0; r0 < w1;) {
    const int seq = a.row_seq[r0];
    int r1 = r0 + 1;
    while (r1 < w1 && a.row_seq[r1] == seq) r1++;
    const int nr = r1 - r0;
    const bool single = nr == 1 && (r0 == 0 || a.row_seq[r0 - 1] != seq) &&
                        (r1 >= a.T || a.row_seq[r1] != seq);
    if (only_multi && single) {  // a decode row: the decode kernel has it
      r0 = r1;
      continue;
    }
    __syncthreads();  // the previous run is done with shared memory
    if (tid < kBM) s_pos[tid] = tid < nr ? a.positions[r0 + tid] : -1;
    for (int i = tid; i < kBM * CH; i += kThreads) {
      const int row = i / CH, col = i % CH;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (row < nr)
        v = *reinterpret_cast<const uint4 *>(a.q + ((size_t)(r0 + row) * a.Hq + h) * D + col * 8);
      *reinterpret_cast<uint4 *>(sQ + row * LD + col * 8) = v;
    }
    __syncthreads();
    int kmax = -1;
    for (int i = 0; i < nr; i++) kmax = max(kmax, s_pos[i]);
    const int nk = kmax + 1;
    const int ntiles = (nk + kBN - 1) / kBN;
    const int32_t *bt = a.block_tables + (size_t)seq * a.bt_stride;
    const int pos0 = s_pos[warp * 16 + g], pos1 = s_pos[warp * 16 + g + 8];
    const int wmax = __reduce_max_sync(0xffffffffu, max(pos0, pos1));

    uint32_t qf[D / 16][4];
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
      ldsm_x4(qf[ks], sQ + (warp * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);
    float o[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    // load_tile gathers key tile j (K and V) into stage st; keys past the
    // prefix are zero-filled so that P·V never meets stale values
    auto load_tile = [&](int st, int j) {
      __nv_bfloat16 *dk = sK + st * kBN * LD, *dv = sV + st * kBN * LD;
#pragma unroll
      for (int i = tid; i < kBN * CH; i += kThreads) {
        const int row = i / CH, col = i % CH;
        const int p = j * kBN + row;
        const bool ok = p < nk;
        long long off = 0;
        if (ok) off = attn_slot(bt, p, a.bs, a.bs_shift) * stride + col * 8;
        cp_async16(dk + row * LD + col * 8, kh + off, ok);
        cp_async16(dv + row * LD + col * 8, vh + off, ok);
      }
      cp_async_commit();
    };

    if (ntiles > 0) load_tile(0, 0);
    for (int j = 0; j < ntiles; j++) {
      const int st = j & 1;
      if (j + 1 < ntiles) {
        load_tile(st ^ 1, j + 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      const int kt0 = j * kBN;
      if (kt0 <= wmax) {  // some row of this warp sees this key tile
        const __nv_bfloat16 *tk = sK + st * kBN * LD, *tv = sV + st * kBN * LD;
        float s[kBN / 8][4];
#pragma unroll
        for (int nt = 0; nt < kBN / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < D / 16; ks++) {
#pragma unroll
          for (int np = 0; np < kBN / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, tk + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + ks * 16 +
                           ((lane >> 3) & 1) * 8);
            mma16816(s[2 * np], qf[ks], b[0], b[1]);
            mma16816(s[2 * np + 1], qf[ks], b[2], b[3]);
          }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBN / 8; nt++) {
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int kp = kt0 + nt * 8 + tq * 2 + e;
            const float v0 = kp <= pos0 ? s[nt][e] * sl2 : -INFINITY;
            const float v1 = kp <= pos1 ? s[nt][2 + e] * sl2 : -INFINITY;
            s[nt][e] = v0;
            s[nt][2 + e] = v1;
            mx0 = fmaxf(mx0, v0);
            mx1 = fmaxf(mx1, v1);
          }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        // a row with nothing visible yet keeps -inf; exponents use base 0
        const float b0 = mn0 == -INFINITY ? 0.f : mn0, b1 = mn1 == -INFINITY ? 0.f : mn1;
        const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
        m0 = mn0;
        m1 = mn1;
        float rs0 = 0.f, rs1 = 0.f;
        uint32_t pa[kBN / 16][4];
#pragma unroll
        for (int nt = 0; nt < kBN / 8; nt++) {
          const float p00 = exp2f(s[nt][0] - b0), p01 = exp2f(s[nt][1] - b0);
          const float p10 = exp2f(s[nt][2] - b1), p11 = exp2f(s[nt][3] - b1);
          rs0 += p00 + p01;
          rs1 += p10 + p11;
          pa[nt >> 1][(nt & 1) * 2] = pack_bf16(p00, p01);
          pa[nt >> 1][(nt & 1) * 2 + 1] = pack_bf16(p10, p11);
        }
        l0 = l0 * c0 + rs0;
        l1 = l1 * c1 + rs1;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
          o[dt][0] *= c0;
          o[dt][1] *= c0;
          o[dt][2] *= c1;
          o[dt][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < kBN / 16; kk++) {
#pragma unroll
          for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_t(b, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 +
                             (lane >> 4) * 8);
            mma16816(o[2 * dp], pa[kk], b[0], b[1]);
            mma16816(o[2 * dp + 1], pa[kk], b[2], b[3]);
          }
        }
      }
      __syncthreads();  // stage st is refilled by the next iteration
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
    const int row0 = warp * 16 + g, row1 = row0 + 8;
    if (row0 < nr) {
      __nv_bfloat16 *dst = a.out + ((size_t)(r0 + row0) * a.Hq + h) * D + tq * 2;
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++)
        *reinterpret_cast<uint32_t *>(dst + dt * 8) = pack_bf16(o[dt][0] * i0, o[dt][1] * i0);
    }
    if (row1 < nr) {
      __nv_bfloat16 *dst = a.out + ((size_t)(r0 + row1) * a.Hq + h) * D + tq * 2;
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++)
        *reinterpret_cast<uint32_t *>(dst + dt * 8) = pack_bf16(o[dt][2] * i1, o[dt][3] * i1);
    }
    r0 = r1;
  }
}

template <int D, int NW>
cudaError_t launch_d(const AttnArgs &a, int only_multi, cudaStream_t s) {
  constexpr size_t smem = prefill_smem<D, NW>();
  constexpr int kBM = 16 * NW;
  // the opt-in above 48 KiB is per device; set it once on each
  static unsigned long long done = 0;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  if (dev >= 64 || !(done >> dev & 1ull)) {
    e = cudaFuncSetAttribute(attn_prefill_kernel<D, NW>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem);
    if (e != cudaSuccess) return e;
    if (dev < 64) done |= 1ull << dev;
  }
  dim3 grid((a.T + kBM - 1) / kBM, a.Hq);
  return tk_launch_smem(attn_prefill_kernel<D, NW>, grid, dim3(NW * 32), smem, s, a, only_multi);
}

}  // namespace

cudaError_t attn_launch_prefill(const AttnArgs &a, int only_multi, bool warps8, cudaStream_t s) {
  if (a.D == 64) return warps8 ? launch_d<64, 8>(a, only_multi, s) : launch_d<64, 4>(a, only_multi, s);
  if (a.D == 128)
    return warps8 ? launch_d<128, 8>(a, only_multi, s) : launch_d<128, 4>(a, only_multi, s);
  return cudaErrorInvalidValue;
}
