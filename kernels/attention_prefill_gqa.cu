// attention_prefill_gqa.cu: the default prefill kernel (variant 3 of
// attention.cu runs the first one, attention_prefill.cu, instead): tensor-
// core flash attention for runs of query rows of one sequence, causal,
// paged, with the query heads of a KV group packed into one tile.
//
// Layout as in attention_decode.cu. Grid: (window of P = 128/G query rows,
// KV head), G = Hq/Hkv <= 128. A block's 128 tile rows are the (row, head)
// pairs of its window in memory order, m = row·G + g, so one K/V tile in
// shared memory serves all G query heads of the group, and the rows of a
// tile share a narrow causal key range (a window of 32 positions at G = 4).
// A window's rows are cut into runs of one sequence, as before; decode rows
// are left to the decode kernel (only_multi). 4 warps, 32 tile rows each
// (two m16 tiles): every K or V fragment read from shared memory feeds two
// mma.sync, which keeps the ldmatrix traffic under the tensor-core rate (16
// rows a warp, as in attention_prefill.cu, is bound by shared-memory
// bandwidth). Q is re-read from shared memory per key tile (in registers
// next to the 32x128 float accumulator it would spill). K/V tiles of 64
// keys are gathered with cp.async into two stages, one barrier a tile: tile
// j+1 loads while tile j computes; the cache slots of tile j+2 are looked
// up in the block table meanwhile (s_slot), off the copy's path. S = Q·Kᵀ
// and O += P·V run on mma.sync m16n8k16 (bf16 in, float32 accumulate), P
// straight from the S registers; online softmax in log2 units with the
// scale folded into the exponent's FMA; the causal mask only on tiles that
// cross the diagonal of some row of the warp; O is rescaled only when some
// row's max moved. Results go out through shared memory in 16-byte stores.
//
// Bound: FLOPs (4·D per visible (row, key) pair per query head). Per tile a
// warp issues 80 ldmatrix.x4 (16 Q, 32 K, 32 V) for 256 mma; two blocks fit
// an SM (registers: 4 warps x 255; shared memory: 103 KiB at D = 128).
#include <math.h>

#include "attention.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kBM = 32 * kWarps;  // tile rows: (row, head) pairs
constexpr int kBN = 64;           // keys per tile

// ex2 is exp2f without its rescue of results below 2^-126 (flushed to 0
// here): 1 instruction instead of 4, and such weights vanish next to the
// row's maximum term, which is 1.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <int D>
constexpr size_t gqa_smem() {
  // Q tile + two stages of K and V tiles, rows padded by 16 bytes so that
  // ldmatrix's 8 row addresses fall in distinct banks
  return (size_t)(kBM + 4 * kBN) * (D + 8) * sizeof(__nv_bfloat16);
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32, 2) attn_prefill_gqa_kernel(AttnArgs a, int only_multi) {
  constexpr int kThreads = kWarps * 32;
  constexpr int LD = D + 8;             // shared row stride in elements
  constexpr int CH = D / 8;             // 16-byte chunks per row
  constexpr int RPP = kThreads / CH;    // K/V rows a pass of the block copies
  constexpr int NPASS = kBN / RPP;
  static_assert(kThreads == 2 * kBN, "the first two tiles' slots take one pass");
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(smem);
  __nv_bfloat16 *sK = sQ + kBM * LD;
  __nv_bfloat16 *sV = sK + 2 * kBN * LD;
  __shared__ int s_pos[kBM];
  __shared__ int s_slot[2][kBN];  // cache slots of the next key tiles
  tk_griddep_wait();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int kvh = blockIdx.y;
  const int G = a.Hq / a.Hkv;
  const int P = kBM / G;  // query rows per window (the host checks G <= kBM)
  // the last windows see the longest prefixes: start them first
  const int w0 = (gridDim.x - 1 - blockIdx.x) * P;
  const int w1 = min(a.T, w0 + P);
  const float sl2 = a.scale * kLog2e;
  const unsigned slot_bytes = (unsigned)a.Hkv * D * sizeof(__nv_bfloat16);
  // this thread's 16-byte chunk of a key's K and V rows of head kvh
  const char *kb = reinterpret_cast<const char *>(a.kc + (size_t)kvh * D + tid % CH * 8);
  const char *vb = reinterpret_cast<const char *>(a.vc + (size_t)kvh * D + tid % CH * 8);
  // tile row m is query row r0 + m / G, head kvh·G + m % G: q + qoff(m)·D
  auto qoff = [&](int r0, int m) {
    return ((size_t)(r0 + m / G) * a.Hq + (size_t)kvh * G + m % G) * D;
  };

  for (int r0 = w0; r0 < w1;) {
    const int seq = a.row_seq[r0];
    int r1 = r0 + 1;
    while (r1 < w1 && a.row_seq[r1] == seq) r1++;
    const bool single = r1 - r0 == 1 && (r0 == 0 || a.row_seq[r0 - 1] != seq) &&
                        (r1 >= a.T || a.row_seq[r1] != seq);
    if (only_multi && single) {  // a decode row: the decode kernel has it
      r0 = r1;
      continue;
    }
    const int nm = (r1 - r0) * G;  // tile rows in use
    __syncthreads();               // the previous run is done with shared memory
    // unused tile rows get position -1: never visible, never in a warp's range
    if (tid < kBM) s_pos[tid] = tid < nm ? a.positions[r0 + tid / G] : -1;
    // Q rides in the first key tile's cp.async group (zeros past the run)
    for (int i = tid; i < kBM * CH; i += kThreads) {
      const int row = i / CH, col = i % CH;
      cp_async16(sQ + row * LD + col * 8, a.q + (row < nm ? qoff(r0, row) : 0) + col * 8,
                 row < nm);
    }
    __syncthreads();
    int pmax = max(max(s_pos[lane], s_pos[lane + 32]), max(s_pos[lane + 64], s_pos[lane + 96]));
    const int nk = __reduce_max_sync(0xffffffffu, pmax) + 1;  // keys of the run
    const int ntiles = (nk + kBN - 1) / kBN;
    const int mine = s_pos[warp * 32 + lane];
    // the warp's rows see keys up to wmax, and all of them keys up to wmin
    const int wmax = __reduce_max_sync(0xffffffffu, mine);
    const int wmin = __reduce_min_sync(0xffffffffu, mine < 0 ? 0x7fffffff : mine);
    const int32_t *bt = a.block_tables + (size_t)seq * a.bt_stride;
    const __nv_bfloat16 *sQw = sQ + warp * 32 * LD;

    float o[2][D / 8][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) o[mi][dt][0] = o[mi][dt][1] = o[mi][dt][2] = o[mi][dt][3] = 0.f;
    float m[2][2], l[2][2];
#pragma unroll
    for (int mi = 0; mi < 2; mi++) m[mi][0] = m[mi][1] = -INFINITY, l[mi][0] = l[mi][1] = 0.f;

    // The cache slots of key tile j sit in s_slot[j & 1] (-1 past the
    // run's keys) one barrier before the tile's load is issued: the
    // block-table reads stay off the copy loop and out of its latency.
    auto put_slots = [&](int j, int key) {
      const int p = j * kBN + key;
      s_slot[j & 1][key] = p < nk ? (int)attn_slot(bt, p, a.bs, a.bs_shift) : -1;
    };
    // load_tile gathers key tile j (K and V) into stage st; keys past the
    // run's prefix are zero-filled (and masked) so that P·V never meets
    // stale values
    auto load_tile = [&](int st, int j) {
      __nv_bfloat16 *dk = sK + st * kBN * LD + tid % CH * 8, *dv = dk + 2 * kBN * LD;
#pragma unroll
      for (int i = 0; i < NPASS; i++) {
        const int row = tid / CH + i * RPP;
        const int slot = s_slot[j & 1][row];
        const size_t off = (size_t)(unsigned)max(slot, 0) * slot_bytes;
        cp_async16(dk + row * LD, kb + off, slot >= 0);
        cp_async16(dv + row * LD, vb + off, slot >= 0);
      }
      cp_async_commit();
    };

    put_slots(tid / kBN, tid % kBN);  // tiles 0 and 1 (kThreads = 2·kBN)
    __syncthreads();
    load_tile(0, 0);  // with no keys (never for a real run) it zero-fills
    for (int j = 0; j < ntiles; j++) {
      const int st = j & 1;
      cp_async_wait<0>();
      // tile j is in for all threads, and all are done with tile j-1, whose
      // stage the next load takes, and with tile j's slots
      __syncthreads();
      if (j + 1 < ntiles) load_tile(st ^ 1, j + 1);
      if (j + 2 < ntiles && tid < kBN) put_slots(j + 2, tid);
      const int kt0 = j * kBN;
      if (kt0 > wmax) continue;  // none of the warp's rows sees this tile
      const __nv_bfloat16 *tk = sK + st * kBN * LD, *tv = sV + st * kBN * LD;

      float s[2][kBN / 8][4];
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int nt = 0; nt < kBN / 8; nt++) s[mi][nt][0] = s[mi][nt][1] = s[mi][nt][2] = s[mi][nt][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++) {
        uint32_t qa[2][4];
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
          ldsm_x4(qa[mi], sQw + (mi * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int np = 0; np < kBN / 16; np++) {
          uint32_t b[4];
          ldsm_x4(b, tk + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + ks * 16 +
                         ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int mi = 0; mi < 2; mi++) {
            mma16816(s[mi][2 * np], qa[mi], b[0], b[1]);
            mma16816(s[mi][2 * np + 1], qa[mi], b[2], b[3]);
          }
        }
      }
      if (kt0 + kBN - 1 > wmin) {  // the tile crosses some row's diagonal
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
          for (int hf = 0; hf < 2; hf++) {
            // this thread's row warp·32 + mi·16 + hf·8 + g sees keys <= pos
            const int lim = s_pos[warp * 32 + mi * 16 + hf * 8 + g] - kt0 - tq * 2;
#pragma unroll
            for (int nt = 0; nt < kBN / 8; nt++) {
              if (nt * 8 > lim) s[mi][nt][2 * hf] = -INFINITY;
              if (nt * 8 + 1 > lim) s[mi][nt][2 * hf + 1] = -INFINITY;
            }
          }
      }

      // online softmax on raw scores: p = 2^(s·sl2 - m·sl2)
      float base[2][2], c[2][2];
      bool moved = false;
#pragma unroll
      for (int mi = 0; mi < 2; mi++) {
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < kBN / 8; nt++)
            mx = fmaxf(mx, fmaxf(s[mi][nt][2 * hf], s[mi][nt][2 * hf + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mn = fmaxf(m[mi][hf], mx);
          // a row with nothing visible yet keeps -inf; exponents use base 0
          base[mi][hf] = mn == -INFINITY ? 0.f : mn * sl2;
          c[mi][hf] = ex2(m[mi][hf] * sl2 - base[mi][hf]);
          moved |= mn != m[mi][hf];
          m[mi][hf] = mn;
        }
      }
      // P as the A operand of P·V: key chunk kk is S n-tiles 2kk and 2kk+1
      uint32_t pa[2][kBN / 16][4];
#pragma unroll
      for (int mi = 0; mi < 2; mi++) {
        float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
        for (int nt = 0; nt < kBN / 8; nt++) {
          const float p00 = ex2(fmaf(s[mi][nt][0], sl2, -base[mi][0]));
          const float p01 = ex2(fmaf(s[mi][nt][1], sl2, -base[mi][0]));
          const float p10 = ex2(fmaf(s[mi][nt][2], sl2, -base[mi][1]));
          const float p11 = ex2(fmaf(s[mi][nt][3], sl2, -base[mi][1]));
          rs0 += p00 + p01;
          rs1 += p10 + p11;
          pa[mi][nt >> 1][(nt & 1) * 2] = pack_bf16(p00, p01);
          pa[mi][nt >> 1][(nt & 1) * 2 + 1] = pack_bf16(p10, p11);
        }
        l[mi][0] = l[mi][0] * c[mi][0] + rs0;
        l[mi][1] = l[mi][1] * c[mi][1] + rs1;
      }
      // after the first tiles the max rarely moves: skip the rescale then
      // (c is exactly 1 for a row whose max stayed)
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
          for (int dt = 0; dt < D / 8; dt++) {
            o[mi][dt][0] *= c[mi][0];
            o[mi][dt][1] *= c[mi][0];
            o[mi][dt][2] *= c[mi][1];
            o[mi][dt][3] *= c[mi][1];
          }
      }
#pragma unroll
      for (int kk = 0; kk < kBN / 16; kk++) {
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
          uint32_t b[4];
          ldsm_x4_t(b, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 +
                           (lane >> 4) * 8);
#pragma unroll
          for (int mi = 0; mi < 2; mi++) {
            mma16816(o[mi][2 * dp], pa[mi][kk], b[0], b[1]);
            mma16816(o[mi][2 * dp + 1], pa[mi][kk], b[2], b[3]);
          }
        }
      }
    }

    if (ntiles == 0) {  // never for real positions: let Q's copies land
      cp_async_wait<0>();
      __syncthreads();
    }

    // normalize and stage the warp's rows as bf16 in its own Q rows (only
    // this warp reads them), then write them out 16 bytes a lane
    __nv_bfloat16 *sOw = sQ + warp * 32 * LD;
    __syncwarp();
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
      for (int hf = 0; hf < 2; hf++) {
        float lt = l[mi][hf];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
        const float inv = lt > 0.f ? 1.f / lt : 0.f;
        __nv_bfloat16 *dst = sOw + (mi * 16 + hf * 8 + g) * LD + tq * 2;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
          *reinterpret_cast<uint32_t *>(dst + dt * 8) =
              pack_bf16(o[mi][dt][2 * hf] * inv, o[mi][dt][2 * hf + 1] * inv);
      }
    }
    __syncwarp();
    for (int i = lane; i < 32 * CH; i += 32) {
      const int row = i / CH, col = i % CH;
      const int mt = warp * 32 + row;
      if (mt < nm)
        *reinterpret_cast<uint4 *>(a.out + qoff(r0, mt) + col * 8) =
            *reinterpret_cast<const uint4 *>(sOw + row * LD + col * 8);
    }
    r0 = r1;
  }
}

template <int D>
cudaError_t launch_d(const AttnArgs &a, int only_multi, cudaStream_t s) {
  constexpr size_t smem = gqa_smem<D>();
  // the opt-in above 48 KiB is per device; set it once on each. Ask for the
  // largest shared-memory carveout so that two blocks fit an SM.
  static unsigned long long done = 0;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  if (dev >= 64 || !(done >> dev & 1ull)) {
    e = cudaFuncSetAttribute(attn_prefill_gqa_kernel<D>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(attn_prefill_gqa_kernel<D>,
                             cudaFuncAttributePreferredSharedMemoryCarveout,
                             (int)cudaSharedmemCarveoutMaxShared);
    if (e != cudaSuccess) return e;
    if (dev < 64) done |= 1ull << dev;
  }
  const int P = kBM / (a.Hq / a.Hkv);
  dim3 grid((a.T + P - 1) / P, a.Hkv);
  return tk_launch_smem(attn_prefill_gqa_kernel<D>, grid, dim3(kWarps * 32), smem, s, a,
                        only_multi);
}

}  // namespace

bool attn_prefill_gqa_supported(int D, int Hq, int Hkv) {
  return (D == 64 || D == 128) && Hkv > 0 && Hq % Hkv == 0 && Hq / Hkv <= kBM;
}

cudaError_t attn_launch_prefill_gqa(const AttnArgs &a, int only_multi, cudaStream_t s) {
  if (!attn_prefill_gqa_supported(a.D, a.Hq, a.Hkv)) return cudaErrorInvalidValue;
  if (a.D == 64) return launch_d<64>(a, only_multi, s);
  return launch_d<128>(a, only_multi, s);
}
