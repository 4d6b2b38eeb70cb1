// gemm_sweep.cu: how fast can cuBLASLt run the decode step's skinny BF16
// GEMMs (out[M, N] = x[M, K] · W[N, K]ᵀ, M = a decode batch of 16-256
// rows)? Bound: reading W once from DRAM (2·N·K bytes). For each shape it
// times, with W cold (a rotation of copies larger than L2):
//   - heur0: the heuristic's first algorithm;
//   - tuned: the fastest of the heuristic's first 24 timed with W hot, the
//     way kernels/gemm.cu's tune() picks (then timed cold);
//   - hbest: the fastest of those 24 timed cold;
//   - split: the heuristic's 24 with split-K 2-16, every reduction scheme
//     they accept and CTA swizzling on and off;
//   - enum:  every algorithm id × tile × stages × split-K {1, 2, 4} (the
//     first kEnumMax that pass cublasLtMatmulAlgoCheck).
// Standalone (not part of the library): nvcc -O2 -std=c++17 -o gemm_sweep
// gemm_sweep.cu -lcublasLt; run as gemm_sweep M:N:K[:f32] ... Prints one
// line per shape and the best configurations' attributes.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define CK(x)                                                                         \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)
#define BK(x)                                                                  \
  do {                                                                         \
    cublasStatus_t s_ = (x);                                                   \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                         \
      fprintf(stderr, "%s:%d %s: status %d\n", __FILE__, __LINE__, #x, (int)s_); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

namespace {

constexpr size_t kWs = 64ull << 20;  // the engine's cuBLASLt workspace is 64 MiB too
constexpr int kReps = 30;
int kEnumMax = 1500;  // configurations the enumeration times at most (GEMM_SWEEP_ENUM)

struct Ctx {
  cublasLtHandle_t h;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, c;
  std::vector<void *> w;  // weight copies, rotated so W comes from DRAM
  void *x, *out, *ws;
  cudaStream_t s;
  cudaEvent_t e0, e1;
};

__global__ void fill(__nv_bfloat16 *p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    unsigned v = (unsigned)(i * 2654435761u) ^ seed;
    v ^= v >> 13;
    v *= 0x5bd1e995u;
    p[i] = __float2bfloat16(((v >> 8) & 0xffff) / 65536.f - 0.5f);
  }
}

// timeit: mean µs of one call over kReps calls (W rotated when cold, else
// always copy 0); < 0 when the algorithm fails.
float timeit(Ctx &c, const cublasLtMatmulAlgo_t &algo, bool cold) {
  float alpha = 1.f, beta = 0.f;
  auto run = [&](int i) {
    void *w = c.w[cold ? i % c.w.size() : 0];
    return cublasLtMatmul(c.h, c.op, &alpha, w, c.a, c.x, c.b, &beta, c.out, c.c, c.out, c.c,
                          &algo, c.ws, kWs, c.s);
  };
  for (int i = 0; i < 2; i++)
    if (run(i) != CUBLAS_STATUS_SUCCESS) {
      cudaGetLastError();
      return -1.f;
    }
  CK(cudaEventRecord(c.e0, c.s));
  for (int i = 0; i < kReps; i++)
    if (run(i + 2) != CUBLAS_STATUS_SUCCESS) return -1.f;
  CK(cudaEventRecord(c.e1, c.s));
  CK(cudaEventSynchronize(c.e1));
  float ms = 0.f;
  CK(cudaEventElapsedTime(&ms, c.e0, c.e1));
  return ms * 1000.f / kReps;
}

std::string describe(const cublasLtMatmulAlgo_t &a) {
  auto get = [&](cublasLtMatmulAlgoConfigAttributes_t at) {
    uint32_t v = 0;
    size_t wr = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&a, at, &v, sizeof(v), &wr) != CUBLAS_STATUS_SUCCESS)
      return -1;
    return (int)v;
  };
  char b[256];
  snprintf(b, sizeof b, "id=%d tile=%d stages=%d splitk=%d red=%d swz=%d custom=%d cluster=%d",
           get(CUBLASLT_ALGO_CONFIG_ID), get(CUBLASLT_ALGO_CONFIG_TILE_ID),
           get(CUBLASLT_ALGO_CONFIG_STAGES_ID), get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
           get(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME), get(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
           get(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION), get(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
  return b;
}

bool usable(Ctx &c, const cublasLtMatmulAlgo_t &a) {
  cublasLtMatmulHeuristicResult_t r;
  if (cublasLtMatmulAlgoCheck(c.h, c.op, c.a, c.b, c.c, c.c, &a, &r) != CUBLAS_STATUS_SUCCESS)
    return false;
  return r.state == CUBLAS_STATUS_SUCCESS && r.workspaceSize <= kWs;
}

template <typename T>
void set(cublasLtMatmulAlgo_t &a, cublasLtMatmulAlgoConfigAttributes_t at, T v) {
  cublasLtMatmulAlgoConfigSetAttribute(&a, at, &v, sizeof(v));
}

struct Best {
  float us = 1e30f;
  std::string what;
  int tried = 0;
  void see(float t, const cublasLtMatmulAlgo_t &a) {
    tried++;
    if (t > 0 && t < us) {
      us = t;
      what = describe(a);
    }
  }
};

void sweep(cublasLtHandle_t h, int M, int N, int K, bool f32, double l2_bytes) {
  Ctx c{};
  c.h = h;
  cudaDataType_t ct = f32 ? CUDA_R_32F : CUDA_R_16BF;
  BK(cublasLtMatmulDescCreate(&c.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  BK(cublasLtMatmulDescSetAttribute(c.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  BK(cublasLtMatmulDescSetAttribute(c.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  BK(cublasLtMatrixLayoutCreate(&c.a, CUDA_R_16BF, K, N, K));
  BK(cublasLtMatrixLayoutCreate(&c.b, CUDA_R_16BF, K, M, K));
  BK(cublasLtMatrixLayoutCreate(&c.c, ct, N, M, N));
  const size_t wbytes = (size_t)N * K * 2;
  const int copies = std::max(2, (int)(4 * l2_bytes / wbytes) + 1);
  for (int i = 0; i < copies; i++) {
    void *p;
    CK(cudaMalloc(&p, wbytes));
    fill<<<1024, 256>>>((__nv_bfloat16 *)p, (size_t)N * K, 77 + i);
    c.w.push_back(p);
  }
  CK(cudaMalloc(&c.x, (size_t)M * K * 2));
  fill<<<256, 256>>>((__nv_bfloat16 *)c.x, (size_t)M * K, 5);
  CK(cudaMalloc(&c.out, (size_t)M * N * (f32 ? 4 : 2)));
  CK(cudaMalloc(&c.ws, kWs));
  CK(cudaStreamCreate(&c.s));
  CK(cudaEventCreate(&c.e0));
  CK(cudaEventCreate(&c.e1));
  CK(cudaDeviceSynchronize());

  cublasLtMatmulPreference_t pref;
  BK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWs;
  BK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                          sizeof(ws)));
  cublasLtMatmulHeuristicResult_t res[24];
  int found = 0;
  BK(cublasLtMatmulAlgoGetHeuristic(h, c.op, c.a, c.b, c.c, c.c, pref, 24, res, &found));
  cublasLtMatmulPreferenceDestroy(pref);

  float heur0 = timeit(c, res[0].algo, true);
  Best hot, hbest, split, en;
  int tuned_i = 0;
  for (int i = 0; i < found; i++) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    float th = timeit(c, res[i].algo, false);
    if (th > 0 && th < hot.us) {
      hot.us = th;
      tuned_i = i;
    }
    hbest.see(timeit(c, res[i].algo, true), res[i].algo);
  }
  float tuned = timeit(c, res[tuned_i].algo, true);

  // split-K and swizzle variants of the heuristic's candidates
  for (int i = 0; i < found; i++) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    int sk_ok = 0;
    uint32_t red_mask = 0;
    int swz_ok = 0;
    size_t wr;
    cublasLtMatmulAlgoCapGetAttribute(&res[i].algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &sk_ok,
                                      sizeof(sk_ok), &wr);
    cublasLtMatmulAlgoCapGetAttribute(&res[i].algo, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK,
                                      &red_mask, sizeof(red_mask), &wr);
    cublasLtMatmulAlgoCapGetAttribute(&res[i].algo, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT,
                                      &swz_ok, sizeof(swz_ok), &wr);
    const int sks[] = {1, 2, 3, 4, 5, 6, 8, 12, 16};
    for (int sk : sks) {
      if (sk > 1 && !sk_ok) continue;
      for (uint32_t red : {0u, 1u, 2u, 4u}) {
        if (sk == 1 && red) continue;
        if (sk > 1 && (!red || !(red & red_mask))) continue;
        for (uint32_t swz = 0; swz <= (uint32_t)(swz_ok ? 1 : 0); swz++) {
          cublasLtMatmulAlgo_t a = res[i].algo;
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, sk);
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, red);
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, swz);
          if (!usable(c, a)) continue;
          split.see(timeit(c, a, true), a);
        }
      }
    }
  }

  // every algorithm id × tile × stages × split-K {1, 2, 4}
  int ids[128], nids = 0;
  BK(cublasLtMatmulAlgoGetIds(h, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, ct, ct,
                              128, ids, &nids));
  for (int k = 0; k < nids && en.tried < kEnumMax; k++) {
    cublasLtMatmulAlgo_t base;
    if (cublasLtMatmulAlgoInit(h, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, ct, ct,
                               ids[k], &base) != CUBLAS_STATUS_SUCCESS)
      continue;
    size_t nb = 0;
    cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, nullptr, 0, &nb);
    std::vector<uint32_t> tiles(std::max<size_t>(nb / 4, 1), 0);
    if (nb) cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, tiles.data(), nb, &nb);
    cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, nullptr, 0, &nb);
    std::vector<uint32_t> stages(std::max<size_t>(nb / 4, 1), 0);
    if (nb) cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, stages.data(), nb, &nb);
    int sk_ok = 0;
    size_t wr;
    cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &sk_ok, sizeof(sk_ok), &wr);
    for (uint32_t tile : tiles)
      for (uint32_t stg : stages)
        for (int sk : {1, 2, 4}) {
          if (sk > 1 && !sk_ok) continue;
          cublasLtMatmulAlgo_t a = base;
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_TILE_ID, tile);
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, stg);
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, (uint32_t)sk);
          set<uint32_t>(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, sk > 1 ? 2u : 0u);
          if (!usable(c, a)) continue;
          en.see(timeit(c, a, true), a);
        }
  }

  const double gb = wbytes / 1e3;  // bytes per µs = GB/s ×1e-3
  if (en.tried == 0) en.us = -1.f;  // none timed (GEMM_SWEEP_ENUM=0)
  const float best = en.us > 0 ? std::min(split.us, en.us) : split.us;
  printf("SWEEP M=%d N=%d K=%d out=%s | heur0 %.1f | tuned %.1f | hbest %.1f | split %.1f (%d) | enum %.1f (%d) us | W GB/s: tuned %.0f best %.0f\n",
         M, N, K, f32 ? "f32" : "bf16", heur0, tuned, hbest.us, split.us, split.tried, en.us,
         en.tried, gb / tuned, gb / best);
  printf("  tuned: %s\n  hbest: %s\n  split: %s\n  enum:  %s\n", describe(res[tuned_i].algo).c_str(),
         hbest.what.c_str(), split.what.c_str(), en.what.c_str());
  fflush(stdout);
  for (void *p : c.w) cudaFree(p);
  cudaFree(c.x);
  cudaFree(c.out);
  cudaFree(c.ws);
  cudaStreamDestroy(c.s);
  cudaEventDestroy(c.e0);
  cudaEventDestroy(c.e1);
  cublasLtMatrixLayoutDestroy(c.a);
  cublasLtMatrixLayoutDestroy(c.b);
  cublasLtMatrixLayoutDestroy(c.c);
  cublasLtMatmulDescDestroy(c.op);
}

}  // namespace

int main(int argc, char **argv) {
  if (const char *e = getenv("GEMM_SWEEP_ENUM")) kEnumMax = atoi(e);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  // copy bandwidth: bytes read + written per second by cudaMemcpy D2D
  size_t n = 1ull << 30;
  void *p, *q;
  CK(cudaMalloc(&p, n));
  CK(cudaMalloc(&q, n));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaMemcpy(q, p, n, cudaMemcpyDeviceToDevice));
  CK(cudaEventRecord(e0));
  for (int i = 0; i < 10; i++) CK(cudaMemcpy(q, p, n, cudaMemcpyDeviceToDevice));
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  float ms;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  printf("device %s, L2 %d MB, copy %.0f GB/s (read+write)\n", prop.name, prop.l2CacheSize >> 20,
         2.0 * n * 10 / (ms * 1e6));
  cudaFree(p);
  cudaFree(q);
  cublasLtHandle_t h;
  BK(cublasLtCreate(&h));
  for (int i = 1; i < argc; i++) {
    int M, N, K;
    char o[8] = "";
    if (sscanf(argv[i], "%d:%d:%d:%7s", &M, &N, &K, o) < 3) {
      fprintf(stderr, "bad shape %s (M:N:K[:f32])\n", argv[i]);
      return 2;
    }
    sweep(h, M, N, K, strcmp(o, "f32") == 0, prop.l2CacheSize);
  }
  cublasLtDestroy(h);
  return 0;
}
