// attention_decode.cu: paged attention for decode rows (one query token of
// a sequence), GQA, split-KV.
//
// Layout: q/out [T, Hq*D] bf16; K and V caches [slots, Hkv, D] bf16, slot =
// block_tables[seq][p / bs]*bs + p % bs; row t attends to positions
// 0..positions[t] of sequence row_seq[t].
//
// Bound: reading K and V once, 4*D bytes per key per KV head. A block serves
// up to GC query heads of one KV head (each K/V vector feeds all of them)
// over one split of the keys with attn_decode_span (attention.cuh: 16-byte
// loads, U keys a lane in flight, a float32 online softmax in log2 units),
// and its warps merge at the end. Splits over the keys (grid z) let
// short batches stream the whole chip; the last split of a (row, head
// chunk) to finish merges the partials (a counter in the workspace), so a
// decode step costs one launch (variant 2: attention.cu's combine kernel).
#include <math.h>

#include "attention.cuh"

namespace {

constexpr int kWarps = 4;

// HF (heads first): the grid's x is the head chunk and y the decode row,
// so the blocks of one row's heads, which read the same cache blocks, run
// side by side; otherwise x is the row (every resident block reads another
// sequence's blocks).
template <int D, int GC, int U, bool HF>
__global__ void __launch_bounds__(kWarps * 32, kAttnDecodeBlocksPerSM)
    attn_decode_kernel(AttnArgs a) {
  __shared__ float sm_acc[kWarps][GC][D];
  __shared__ float sm_ml[kWarps][GC][2];
  tk_griddep_wait();
  const int bi = HF ? blockIdx.y : blockIdx.x;  // decode row index
  const int bh = HF ? blockIdx.x : blockIdx.y;  // head chunk
  const int nbh = HF ? gridDim.x : gridDim.y;
  const int t = a.decode_rows[bi];
  const int G = a.Hq / a.Hkv;
  const int ngc = (G + GC - 1) / GC;
  const int kvh = bh / ngc, gc = bh % ngc;
  const int h0 = kvh * G + gc * GC;
  const int nh = min(GC, G - gc * GC);
  const int warp = threadIdx.x >> 5;
  const int n = a.positions[t] + 1;
  const int chunk = attn_split_chunk(n, a.splits);
  const int k0 = blockIdx.z * chunk;
  if (k0 >= n) return;  // beyond this row's context: the combine skips it
  const int k1 = min(n, k0 + chunk);
  const int32_t *bt = a.block_tables + (size_t)a.row_seq[t] * a.bt_stride;
  attn_decode_span<D, GC, U, kWarps>(a, t, kvh, h0, nh, k0, k1, bt, sm_acc, sm_ml);
  __syncthreads();
  // merge the warps; one warp per head
  for (int g = warp; g < nh; g += kWarps) {
    const int h = h0 + g;
    if (a.splits == 1) {
      attn_merge_warps<D, GC, kWarps>(sm_acc, sm_ml, g, a.out + ((size_t)t * a.Hq + h) * D,
                                      nullptr, nullptr);
    } else {
      const size_t i = ((size_t)blockIdx.z * a.T + t) * a.Hq + h;
      attn_merge_warps<D, GC, kWarps>(sm_acc, sm_ml, g, nullptr, a.ws_acc + i * D,
                                      a.ws_ml + 2 * i);
    }
  }
  if (a.splits == 1 || a.counters == nullptr) return;  // the combine kernel merges
  // the last split of this (row, head chunk) to finish merges them all
  __shared__ int s_last;
  __threadfence();  // this block's partials are visible before it counts
  __syncthreads();
  if (threadIdx.x == 0) {
    const int used = min(a.splits, (n + chunk - 1) / chunk);
    int *ctr = a.counters + (size_t)t * nbh + bh;
    const int prev = atomicAdd(ctr, 1);
    s_last = prev == used - 1;
    if (s_last) *ctr = 0;  // every split has counted: ready for the next call
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const int used = min(a.splits, (n + chunk - 1) / chunk);
  for (int g = warp; g < nh; g += kWarps)
    attn_merge_splits<true>(a.out, a.ws_ml, a.ws_acc, (size_t)t * a.Hq + h0 + g, used,
                            (size_t)a.T * a.Hq, D);
}

template <int D, int GC>
cudaError_t launch_gc(const AttnArgs &a, bool heads_first, cudaStream_t s) {
  constexpr int U = GC >= 8 ? 2 : 4;
  const int G = a.Hq / a.Hkv;
  const int nbh = a.Hkv * ((G + GC - 1) / GC);
  if (heads_first)
    return tk_launch(attn_decode_kernel<D, GC, U, true>, dim3(nbh, a.num_decode, a.splits),
                     kWarps * 32, s, a);
  return tk_launch(attn_decode_kernel<D, GC, U, false>, dim3(a.num_decode, nbh, a.splits),
                   kWarps * 32, s, a);
}

template <int D>
cudaError_t launch_d(const AttnArgs &a, bool heads_first, cudaStream_t s) {
  const int G = a.Hq / a.Hkv;
  if (G <= 1) return launch_gc<D, 1>(a, heads_first, s);
  if (G <= 2) return launch_gc<D, 2>(a, heads_first, s);
  if (G <= 4) return launch_gc<D, 4>(a, heads_first, s);
  return launch_gc<D, 8>(a, heads_first, s);
}

}  // namespace

cudaError_t attn_launch_decode(const AttnArgs &a, bool heads_first, cudaStream_t s) {
  if (a.num_decode > 65535 && heads_first) heads_first = false;  // grid y limit
  if (a.D == 64) return launch_d<64>(a, heads_first, s);
  if (a.D == 128) return launch_d<128>(a, heads_first, s);
  return cudaErrorInvalidValue;
}
