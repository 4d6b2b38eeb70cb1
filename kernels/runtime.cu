// runtime.cu: thin wrappers over the CUDA runtime (memory, copies, streams,
// events, graph capture) so that Go sees only tokamak.h. No kernels here.
#include <stdio.h>
#include <string.h>

#include "common.cuh"

static thread_local const char *tk_last = "";

int tk_pdl_enabled = 1;

extern "C" void tk_set_pdl(int on) { tk_pdl_enabled = on; }

void tk_note_call(const char *name) { tk_last = name; }

extern "C" const char *tk_last_call(void) { return tk_last; }

extern "C" const char *tk_error_string(int code) {
  // cuBLAS status codes are small integers that overlap cudaError_t; the
  // blas wrappers add 10000 to them so the two cannot be confused.
  if (code >= 10000) {
    switch (code - 10000) {
      case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
      case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
      case 7: return "CUBLAS_STATUS_INVALID_VALUE";
      case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
      case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
      case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
      case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
      case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
      case 99: return "no cuBLASLt algorithm for this shape";
    }
    return "cuBLAS error";
  }
  if (code == 20000) return "invalid argument to a tokamak kernel";
  return cudaGetErrorString((cudaError_t)code);
}

extern "C" int tk_device_count(int *n) {
  TK_CHECK(cudaGetDeviceCount(n));
  return 0;
}

extern "C" int tk_set_device(int dev) {
  TK_CHECK(cudaSetDevice(dev));
  return 0;
}

extern "C" int tk_device_info(int dev, char *name, size_t *total_bytes, size_t *free_bytes,
                              int *sm_count, int *cc_major, int *cc_minor,
                              int *runtime_version, int *driver_version) {
  cudaDeviceProp p;
  TK_CHECK(cudaGetDeviceProperties(&p, dev));
  strncpy(name, p.name, 255);
  name[255] = 0;
  *sm_count = p.multiProcessorCount;
  *cc_major = p.major;
  *cc_minor = p.minor;
  TK_CHECK(cudaSetDevice(dev));
  TK_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
  TK_CHECK(cudaRuntimeGetVersion(runtime_version));
  TK_CHECK(cudaDriverGetVersion(driver_version));
  return 0;
}

extern "C" int tk_malloc(void **p, size_t bytes) {
  TK_CHECK(cudaMalloc(p, bytes));
  return 0;
}

extern "C" int tk_free(void *p) {
  TK_CHECK(cudaFree(p));
  return 0;
}

extern "C" int tk_host_alloc(void **p, size_t bytes) {
  TK_CHECK(cudaHostAlloc(p, bytes, cudaHostAllocDefault));
  return 0;
}

extern "C" int tk_host_free(void *p) {
  TK_CHECK(cudaFreeHost(p));
  return 0;
}

extern "C" int tk_memcpy_htod(void *dst, const void *src, size_t bytes, tk_stream s) {
  TK_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, TK_STREAM(s)));
  return 0;
}

extern "C" int tk_memcpy_dtoh(void *dst, const void *src, size_t bytes, tk_stream s) {
  TK_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, TK_STREAM(s)));
  TK_CHECK(cudaStreamSynchronize(TK_STREAM(s)));
  return 0;
}

extern "C" int tk_memcpy_dtod(void *dst, const void *src, size_t bytes, tk_stream s) {
  TK_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, TK_STREAM(s)));
  return 0;
}

extern "C" int tk_memset(void *dst, int value, size_t bytes, tk_stream s) {
  TK_CHECK(cudaMemsetAsync(dst, value, bytes, TK_STREAM(s)));
  return 0;
}

extern "C" int tk_stream_create(tk_stream *s) {
  cudaStream_t st;
  TK_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  *s = (tk_stream)st;
  return 0;
}

extern "C" int tk_stream_destroy(tk_stream s) {
  TK_CHECK(cudaStreamDestroy(TK_STREAM(s)));
  return 0;
}

extern "C" int tk_stream_sync(tk_stream s) {
  TK_CHECK(cudaStreamSynchronize(TK_STREAM(s)));
  return 0;
}

extern "C" int tk_device_sync(void) {
  TK_CHECK(cudaDeviceSynchronize());
  return 0;
}

extern "C" int tk_event_create(tk_event *e) {
  cudaEvent_t ev;
  TK_CHECK(cudaEventCreate(&ev));
  *e = (tk_event)ev;
  return 0;
}

extern "C" int tk_event_destroy(tk_event e) {
  TK_CHECK(cudaEventDestroy((cudaEvent_t)e));
  return 0;
}

extern "C" int tk_event_record(tk_event e, tk_stream s) {
  TK_CHECK(cudaEventRecord((cudaEvent_t)e, TK_STREAM(s)));
  return 0;
}

extern "C" int tk_event_sync(tk_event e) {
  TK_CHECK(cudaEventSynchronize((cudaEvent_t)e));
  return 0;
}

extern "C" int tk_event_elapsed_ms(float *ms, tk_event start, tk_event end) {
  TK_CHECK(cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end));
  return 0;
}

// Capture is relaxed: Go may move the calling goroutine between OS threads,
// and the ops captured never call unsafe APIs (no syncs, no allocations).
extern "C" int tk_capture_begin(tk_stream s) {
  TK_CHECK(cudaStreamBeginCapture(TK_STREAM(s), cudaStreamCaptureModeRelaxed));
  return 0;
}

extern "C" int tk_capture_end(tk_stream s, tk_graph *g) {
  cudaGraph_t graph;
  TK_CHECK(cudaStreamEndCapture(TK_STREAM(s), &graph));
  cudaGraphExec_t exec;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    tk_note_call("cudaGraphInstantiate");
    return (int)e;
  }
  *g = (tk_graph)exec;
  return 0;
}

extern "C" int tk_graph_launch(tk_graph g, tk_stream s) {
  TK_CHECK(cudaGraphLaunch((cudaGraphExec_t)g, TK_STREAM(s)));
  return 0;
}

extern "C" int tk_graph_destroy(tk_graph g) {
  TK_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)g));
  return 0;
}
