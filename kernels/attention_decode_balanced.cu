// attention_decode_balanced.cu: paged attention for decode rows with the
// key work dealt out evenly over a fixed grid (attention variants 4 and 5;
// attention_decode.cu is the default).
//
// Layout: as attention_decode.cu: q/out [T, Hq*D] bf16; K and V caches
// [slots, Hkv, D] bf16, slot = block_tables[seq][p / bs]*bs + p % bs; decode
// row t attends to positions 0..positions[t] of sequence row_seq[t].
//
// Bound: reading K and V once (4*D bytes per key per KV head), with the
// same inner loop as the split kernel (16-byte loads, D/8 lanes a key, GC
// query heads of one KV head per K/V read, U keys a lane in flight), which
// streams at ~95% of copy bandwidth on long contexts. What it removes is
// the split kernel's loss on short, uneven contexts (batch 256 at 1000-2000
// keys: ~86%): there the grid is ~10 waves of blocks of 500-1000 keys, the
// last wave is partial, and every block pays a prologue and an epilogue.
//
// Work: a decode row with context n has ncol = Hkv*ceil(G/GC) columns (a KV
// head and up to GC of its query heads); a column is a segment of
// ceil(n/KPI) units, one block iteration (KPI keys) each. The segments of
// all rows, row-major, make a flat unit space of W units. The grid is a
// fixed P = 3 x SMs blocks (one wave; P from the SM count only, so a
// captured graph stays valid for any contexts). Every block scans the
// rows' contexts (positions, via decode_rows) to get W and cuts it into NT
// = min(tasks_per_block*P, W) tasks of equal unit counts: task k is units
// [k*W/NT, (k+1)*W/NT). Variant 4 runs task k on block k; variant 5 cuts 4
// tasks a block and hands them out in order from a counter (robust to SMs
// that stream slower than others, at 4x the task boundaries). A task walks
// its units in order, continuing the online softmax across the units of a
// segment, so it pays one prologue/epilogue per segment it touches.
//
// Merge: a segment inside one task is written to out directly. A segment
// cut by task boundaries leaves one partial (max, sum in log2 units,
// unnormalized accumulators for its heads) per task: in slot 2k when it is
// task k's first segment, 2k+1 when its last, so there are at most 2*NT
// partials whatever the batch (the workspace depends on P and D only). The
// tasks that share a segment are a run tf..tl computable from its units; a
// counter indexed by tf (each task is the first of at most one cut segment:
// its last) lets the last of them to finish merge and reset it.
#include <math.h>

#include "attention.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

// Walk is a block's position in the unit space, kept in shared memory (and
// advanced by thread 0) so the key loop holds none of it in registers.
struct Walk {
  long long W, NT;     // units, tasks
  long long task, w0, w1;  // the current task's units [w0, w1)
  long long flat;      // the next unit to run
  int i, t, n, seq;    // decode row index, its row, context and sequence
  int cu;              // units per column of this row
  int col, u;          // column and unit within it of unit flat
  int first;           // the segment at flat is the task's first
  int off;             // task start: unit offset within row i
};

__device__ __forceinline__ void walk_row(const AttnArgs &a, Walk &w, int kpi) {
  w.t = a.decode_rows[w.i];
  w.n = max(a.positions[w.t] + 1, 0);
  w.seq = a.row_seq[w.t];
  w.cu = (w.n + kpi - 1) / kpi;
}

// merge_pieces: one warp merges the cnt partials of a cut segment for its
// head g into o (that head's output row): contributor 0 in slot0, then
// tasks tf+1.. in their first-segment slots.
template <int D>
__device__ __forceinline__ void merge_pieces(__nv_bfloat16 *o, const float *ws_ml,
                                             const float *ws_acc, int tf, int slot0, int cnt,
                                             int g) {
  const int lane = threadIdx.x & 31;
  auto idx = [&](int j) {
    return (size_t)(j == 0 ? slot0 : 2 * (tf + j)) * kAttnBalancedHeads + g;
  };
  float M = kAttnNegBig;
  for (int j = lane; j < cnt; j += 32) M = fmaxf(M, __ldcg(ws_ml + 2 * idx(j)));
  M = warp_max(M);
  float L = 0.f;
  for (int j = lane; j < cnt; j += 32) {
    const size_t x = idx(j);
    L += __ldcg(ws_ml + 2 * x + 1) * exp2f(__ldcg(ws_ml + 2 * x) - M);
  }
  L = warp_sum(L);
  const float inv = L > 0.f ? 1.f / L : 0.f;
  for (int d = lane * 4; d < D; d += 128) {
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int j = 0; j < cnt; j++) {
      const size_t x = idx(j);
      const float wt = exp2f(__ldcg(ws_ml + 2 * x) - M) * inv;
      const float4 v = __ldcg(reinterpret_cast<const float4 *>(ws_acc + x * D + d));
      s.x += v.x * wt;
      s.y += v.y * wt;
      s.z += v.z * wt;
      s.w += v.w * wt;
    }
    *reinterpret_cast<__nv_bfloat162 *>(o + d) = __floats2bfloat162_rn(s.x, s.y);
    *reinterpret_cast<__nv_bfloat162 *>(o + d + 2) = __floats2bfloat162_rn(s.z, s.w);
  }
}

template <int D, int GC, int U>
__global__ void __launch_bounds__(kThreads, kAttnDecodeBlocksPerSM)
    attn_decode_balanced_kernel(AttnArgs a, int tasks_per_block) {
  constexpr int LPK = D / 8;             // lanes per key
  constexpr int KPW = 32 / LPK;          // keys per warp per load
  constexpr int KPI = kWarps * KPW * U;  // keys per block per iteration: one unit
  __shared__ float sm_acc[kWarps][GC][D];
  __shared__ float sm_ml[kWarps][GC][2];
  __shared__ long long s_pre[kThreads + 1];  // units before each thread's rows
  __shared__ Walk s_w;
  __shared__ int s_last;
  tk_griddep_wait();
  const int G = a.Hq / a.Hkv;
  const int ngc = (G + GC - 1) / GC;
  const int ncol = a.Hkv * ngc;
  const int nd = a.num_decode;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool dynamic = tasks_per_block > 1;

  // W and every thread's prefix: thread j sums the units of rows [j*R, j*R+R)
  const int R = (nd + kThreads - 1) / kThreads;
  {
    const int r0 = min(nd, (int)threadIdx.x * R), r1 = min(nd, r0 + R);
    long long mine = 0;
#pragma unroll 4
    for (int i = r0; i < r1; i++) mine += (max(a.positions[a.decode_rows[i]] + 1, 0) + KPI - 1) / KPI;
    mine *= ncol;
    long long incl = mine;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      long long y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    __shared__ long long s_wsum[kWarps];
    if (lane == 31) s_wsum[warp] = incl;
    __syncthreads();
    long long pre = incl - mine, W = 0;
#pragma unroll
    for (int w = 0; w < kWarps; w++) {
      if (w < warp) pre += s_wsum[w];
      W += s_wsum[w];
    }
    s_pre[threadIdx.x] = pre;
    if (threadIdx.x == kThreads - 1) s_pre[kThreads] = W;
    if (threadIdx.x == 0) {
      s_w.W = W;
      s_w.NT = min((long long)gridDim.x * tasks_per_block, W);
    }
  }
  int *const grab = a.counters + kAttnCounters - 2;  // variant 5: next task
  int *const done = a.counters + kAttnCounters - 1;  // variant 5: blocks out of tasks
  __syncthreads();
  if (s_w.W <= 0) return;  // no decode keys: uniform over the grid

  for (int round = 0;; round++) {
    // the next task: this block's (variant 4) or the counter's (variant 5)
    if (threadIdx.x == 0)
      s_w.task = dynamic ? (long long)atomicAdd(grab, 1) : (round == 0 ? blockIdx.x : s_w.NT);
    __syncthreads();
    if (s_w.task >= s_w.NT) break;
    {
      const long long w0 = s_w.task * s_w.W / s_w.NT;
      // the thread whose rows hold unit w0 finds the row and the offset in it
      const long long pre = s_pre[threadIdx.x];
      if (pre <= w0 && w0 < s_pre[threadIdx.x + 1]) {
        const int r0 = threadIdx.x * R, r1 = min(nd, r0 + R);
        long long p = pre;
        for (int i = r0; i < r1; i++) {
          long long units = (long long)((max(a.positions[a.decode_rows[i]] + 1, 0) + KPI - 1) / KPI) * ncol;
          if (w0 < p + units) {
            s_w.i = i;
            s_w.off = (int)(w0 - p);
            break;
          }
          p += units;
        }
      }
      if (threadIdx.x == 0) {
        s_w.w0 = w0;
        s_w.w1 = (s_w.task + 1) * s_w.W / s_w.NT;
        s_w.flat = w0;
        s_w.first = 1;
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      walk_row(a, s_w, KPI);
      s_w.col = s_w.off / s_w.cu;
      s_w.u = s_w.off % s_w.cu;
    }
    __syncthreads();

    // the task's segments
    for (;;) {
      const int t = s_w.t, n = s_w.n, col = s_w.col, u = s_w.u;
      const int ue = (int)min((long long)s_w.cu, u + (s_w.w1 - s_w.flat));
      const int kvh = col / ngc, gc = col % ngc;
      const int h0 = kvh * G + gc * GC;
      const int nh = min(GC, G - gc * GC);
      const int k0 = u * KPI, k1 = min(n, ue * KPI);
      const int32_t *bt = a.block_tables + (size_t)s_w.seq * a.bt_stride;
      attn_decode_span<D, GC, U, kWarps>(a, t, kvh, h0, nh, k0, k1, bt, sm_acc, sm_ml);
      __syncthreads();

      // the segment's units [s0, s1): whole in this task, or cut
      const long long W = s_w.W, NT = s_w.NT;
      const long long s0 = s_w.flat - u, s1 = s0 + s_w.cu;
      const bool whole = s0 >= s_w.w0 && s1 <= s_w.w1;
      const int slot = 2 * (int)s_w.task + (s_w.first ? 0 : 1);
      // merge the warps; one warp per head
      for (int g = warp; g < nh; g += kWarps) {
        const size_t pi = (size_t)slot * kAttnBalancedHeads + g;
        if (whole)
          attn_merge_warps<D, GC, kWarps>(sm_acc, sm_ml, g, a.out + ((size_t)t * a.Hq + h0 + g) * D,
                                          nullptr, nullptr);
        else
          attn_merge_warps<D, GC, kWarps>(sm_acc, sm_ml, g, nullptr, a.ws_acc + pi * D,
                                          a.ws_ml + 2 * pi);
      }
      if (!whole) {
        // tasks tf..tl share the segment; the last to finish merges
        const long long tf = ((s0 + 1) * NT - 1) / W, tl = (s1 * NT - 1) / W;
        const int cnt = (int)(tl - tf + 1);
        __threadfence();  // this block's partial is visible before it counts
        __syncthreads();
        if (threadIdx.x == 0) {
          int *ctr = a.counters + tf;
          const int prev = atomicAdd(ctr, 1);
          s_last = prev == cnt - 1;
          if (s_last) *ctr = 0;  // every task has counted: ready for the next call
        }
        __syncthreads();
        if (s_last) {
          __threadfence();
          // task tf's piece is its last segment's unless the segment starts its task
          const int slot0 = 2 * (int)tf + (tf * W / NT < s0 ? 1 : 0);
          for (int g = warp; g < nh; g += kWarps)
            merge_pieces<D>(a.out + ((size_t)t * a.Hq + h0 + g) * D, a.ws_ml, a.ws_acc, (int)tf,
                            slot0, cnt, g);
        }
      }
      __syncthreads();  // sm_acc, sm_ml, s_last and s_w are free
      if (threadIdx.x == 0) {
        s_w.flat += ue - u;
        s_w.first = 0;
        s_w.u = 0;
        if (s_w.flat < s_w.w1 && ++s_w.col == ncol) {
          s_w.col = 0;
          do {  // rows of no keys hold no units
            s_w.i++;
            walk_row(a, s_w, KPI);
          } while (s_w.cu == 0);
        }
      }
      __syncthreads();
      if (s_w.flat >= s_w.w1) break;
    }
  }
  if (dynamic && threadIdx.x == 0) {
    // the last block out of tasks resets the counters for the next call
    __threadfence();
    if (atomicAdd(done, 1) == (int)gridDim.x - 1) {
      *grab = 0;
      *done = 0;
    }
  }
}

template <int D, int GC>
cudaError_t launch_gc(const AttnArgs &a, int tasks_per_block, cudaStream_t s) {
  constexpr int U = GC >= 8 ? 2 : 4;
  return tk_launch(attn_decode_balanced_kernel<D, GC, U>, dim3(a.splits), kThreads, s, a,
                   tasks_per_block);
}

template <int D>
cudaError_t launch_d(const AttnArgs &a, int tasks_per_block, cudaStream_t s) {
  const int G = a.Hq / a.Hkv;
  if (G <= 1) return launch_gc<D, 1>(a, tasks_per_block, s);
  if (G <= 2) return launch_gc<D, 2>(a, tasks_per_block, s);
  if (G <= 4) return launch_gc<D, 4>(a, tasks_per_block, s);
  return launch_gc<D, 8>(a, tasks_per_block, s);
}

}  // namespace

cudaError_t attn_launch_decode_balanced(const AttnArgs &a, int tasks_per_block, cudaStream_t s) {
  if (a.counters == nullptr || tasks_per_block < 1 ||
      (long long)a.splits * tasks_per_block > kAttnCounters - 2)
    return cudaErrorInvalidValue;
  if (a.D == 64) return launch_d<64>(a, tasks_per_block, s);
  if (a.D == 128) return launch_d<128>(a, tasks_per_block, s);
  return cudaErrorInvalidValue;
}
