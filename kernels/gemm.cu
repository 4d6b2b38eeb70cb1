// gemm.cu: BF16 GEMM through cuBLASLt for prefill-sized T.
// out[T, N] = x[T, K] · W[N, K]ᵀ, x and W bf16, out bf16 or f32, float32
// accumulation. In cuBLASLt's column-major terms: D (N×T, ld N) =
// op(A)·B with A = W viewed as K×N (ld K, transposed) and B = x viewed as
// K×T (ld K). Compute-bound at large T (2·T·N·K FLOPs). Plans (descriptors
// and an algorithm: the heuristic's first, or for decode-sized T the fastest
// of its first kTuneAlgos timed on the first call) are cached per shape, so
// a steady-state call is one cublasLtMatmul.
#include <cublasLt.h>

#include <map>
#include <tuple>

#include "common.cuh"

namespace {

// kTuneMaxT: while tuning is on (tk_blas_set_tuning: the engine turns it
// on for its decode warm-up), a plan for T up to this many rows (decode
// batches, where the heuristic's first choice ran the 8B projections at
// ~380 TFLOP/s at T = 176 on H100) times the heuristic's candidates on its
// next uncaptured call and keeps the fastest. Other plans take the first
// candidate, so serving never stalls to tune a new shape.
constexpr int kTuneMaxT = 512;
constexpr int kTuneAlgos = 24;

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo;
  cublasLtMatmulAlgo_t cand[kTuneAlgos];
  int ncand = 0;
  bool tuned = false;
};

struct Blas {
  cublasLtHandle_t h = nullptr;
  void *ws = nullptr;
  size_t ws_bytes = 0;
  std::map<std::tuple<int, int, int, int>, Plan> plans;
  bool tune = false;  // tk_blas_set_tuning
};

int st(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? 0 : 10000 + (int)s; }

#define BL_CHECK(call)            \
  do {                            \
    int r_ = st(call);            \
    if (r_) {                     \
      tk_note_call(#call);        \
      return r_;                  \
    }                             \
  } while (0)

void destroy_plan(Plan &p) {
  if (p.op) cublasLtMatmulDescDestroy(p.op);
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.c) cublasLtMatrixLayoutDestroy(p.c);
}

int make_plan(Blas *bl, Plan &p, int out_dt, int T, int N, int K) {
  cudaDataType_t ct = out_dt == TK_F32 ? CUDA_R_32F : CUDA_R_16BF;
  BL_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  BL_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  BL_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  BL_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, K, N, K));
  BL_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, K, T, K));
  BL_CHECK(cublasLtMatrixLayoutCreate(&p.c, ct, N, T, N));
  cublasLtMatmulPreference_t pref;
  BL_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = bl->ws_bytes;
  cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t res[kTuneAlgos];
  int found = 0;
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulAlgoGetHeuristic(bl->h, p.op, p.a, p.b, p.c, p.c, pref,
                                       T <= kTuneMaxT ? kTuneAlgos : 1, res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS) {
    tk_note_call("cublasLtMatmulAlgoGetHeuristic");
    return st(s);
  }
  if (found == 0) {
    tk_note_call("cublasLtMatmulAlgoGetHeuristic");
    return 10099;
  }
  p.algo = res[0].algo;
  for (int i = 0; i < found; i++)
    if (res[i].state == CUBLAS_STATUS_SUCCESS) p.cand[p.ncand++] = res[i].algo;
  return 0;
}

// tune times each candidate of p on this call's operands (a warm-up run,
// then 3 runs between events) and keeps the fastest in p.algo; a candidate
// that fails is skipped. Not while the stream is being captured (the plan
// stays untuned until a later call). The runs reuse W from L2 where it
// fits, which flatters compute-heavy candidates a little.
int tune(Blas *bl, Plan &p, void *out, const void *x, const void *w, cudaStream_t s) {
  cudaStreamCaptureStatus cs;
  TK_CHECK(cudaStreamIsCapturing(s, &cs));
  if (cs != cudaStreamCaptureStatusNone) return 0;
  p.tuned = true;
  if (p.ncand < 2) return 0;
  cudaEvent_t e0, e1;
  TK_CHECK(cudaEventCreate(&e0));
  if (cudaError_t e = cudaEventCreate(&e1); e != cudaSuccess) {
    cudaEventDestroy(e0);
    tk_note_call("cudaEventCreate");
    return (int)e;
  }
  float alpha = 1.f, beta = 0.f, best = 1e30f;
  int r = 0;
  for (int i = 0; i < p.ncand && r == 0; i++) {
    auto run = [&]() {
      return cublasLtMatmul(bl->h, p.op, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                            &p.cand[i], bl->ws, bl->ws_bytes, s);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;
    cudaError_t e = cudaEventRecord(e0, s);
    bool ok = true;
    for (int k = 0; k < 3 && ok; k++) ok = run() == CUBLAS_STATUS_SUCCESS;
    if (e == cudaSuccess) e = cudaEventRecord(e1, s);
    if (e == cudaSuccess) e = cudaEventSynchronize(e1);
    float ms = 0.f;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, e0, e1);
    if (e != cudaSuccess) {
      tk_note_call("cudaEvent (gemm tuning)");
      r = (int)e;
    } else if (ok && ms < best) {
      best = ms;
      p.algo = p.cand[i];
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return r;
}

}  // namespace

extern "C" int tk_blas_create(tk_blas *out, size_t workspace_bytes) {
  Blas *bl = new Blas();
  int r = st(cublasLtCreate(&bl->h));
  if (r) {
    tk_note_call("cublasLtCreate");
    delete bl;
    return r;
  }
  if (workspace_bytes) {
    cudaError_t e = cudaMalloc(&bl->ws, workspace_bytes);
    if (e != cudaSuccess) {
      tk_note_call("cudaMalloc(cublasLt workspace)");
      cublasLtDestroy(bl->h);
      delete bl;
      return (int)e;
    }
  }
  bl->ws_bytes = workspace_bytes;
  *out = (tk_blas)bl;
  return 0;
}

extern "C" int tk_blas_set_tuning(tk_blas h, int on) {
  Blas *bl = (Blas *)h;
  if (!bl) return 20000;
  bl->tune = on != 0;
  return 0;
}

extern "C" int tk_blas_destroy(tk_blas h) {
  Blas *bl = (Blas *)h;
  if (!bl) return 0;
  for (auto &kv : bl->plans) destroy_plan(kv.second);
  if (bl->ws) cudaFree(bl->ws);
  cublasLtDestroy(bl->h);
  delete bl;
  return 0;
}

extern "C" int tk_blas_gemm(tk_blas h, void *out, int out_dt, const void *x, const void *w,
                            int T, int N, int K, tk_stream s) {
  Blas *bl = (Blas *)h;
  if (!bl || T <= 0 || N <= 0 || K <= 0 || (out_dt != TK_F32 && out_dt != TK_BF16))
    return 20000;
  auto key = std::make_tuple(out_dt, T, N, K);
  auto it = bl->plans.find(key);
  if (it == bl->plans.end()) {
    Plan p;
    int r = make_plan(bl, p, out_dt, T, N, K);
    if (r) {
      destroy_plan(p);
      return r;
    }
    it = bl->plans.emplace(key, p).first;
  }
  Plan &p = it->second;
  if (bl->tune && !p.tuned && T <= kTuneMaxT)
    if (int r = tune(bl, p, out, x, w, TK_STREAM(s)); r) return r;
  float alpha = 1.f, beta = 0.f;
  BL_CHECK(cublasLtMatmul(bl->h, p.op, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                          &p.algo, bl->ws, bl->ws_bytes, TK_STREAM(s)));
  return 0;
}
