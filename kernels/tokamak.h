/*
 * tokamak.h: the only ABI that Go (package cuda, through cgo) sees of the
 * CUDA kernels and libraries. Plain C: opaque handles, raw device
 * addresses, int status codes.
 *
 * Conventions:
 *   - every function returns 0 on success or a CUDA/cuBLAS error code;
 *     tk_error_string turns a code into text; tk_last_call names the
 *     failing runtime call of the last failure on this thread;
 *   - dtype arguments use engine/backend's DType numbering
 *     (0 f32, 1 bf16, 2 f16, 3 i32);
 *   - activations (x, out, q, qkv, residual) are bf16 row-major; norm
 *     weights and biases may be f32, bf16 or f16 (passed with their dtype);
 *   - every kernel launch goes onto the given stream and is checked with
 *     cudaGetLastError before returning.
 */
#ifndef TOKAMAK_KERNELS_H
#define TOKAMAK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *tk_stream;
typedef void *tk_event;
typedef void *tk_graph;
typedef void *tk_blas;

enum { TK_F32 = 0, TK_BF16 = 1, TK_F16 = 2, TK_I32 = 3 };

/* --- runtime (runtime.cu) --------------------------------------------- */
const char *tk_error_string(int code);
const char *tk_last_call(void);
int tk_device_count(int *n);
int tk_set_device(int dev);
/* name must hold 256 bytes. */
int tk_device_info(int dev, char *name, size_t *total_bytes, size_t *free_bytes,
                   int *sm_count, int *cc_major, int *cc_minor, int *runtime_version,
                   int *driver_version);
int tk_malloc(void **p, size_t bytes);
int tk_free(void *p);
int tk_host_alloc(void **p, size_t bytes);
int tk_host_free(void *p);
int tk_memcpy_htod(void *dst, const void *src, size_t bytes, tk_stream s);
int tk_memcpy_dtoh(void *dst, const void *src, size_t bytes, tk_stream s);
int tk_memcpy_dtod(void *dst, const void *src, size_t bytes, tk_stream s);
int tk_memset(void *dst, int value, size_t bytes, tk_stream s);
int tk_stream_create(tk_stream *s);
int tk_stream_destroy(tk_stream s);
int tk_stream_sync(tk_stream s);
int tk_device_sync(void);
int tk_event_create(tk_event *e);
int tk_event_destroy(tk_event e);
int tk_event_record(tk_event e, tk_stream s);
int tk_event_sync(tk_event e);
int tk_event_elapsed_ms(float *ms, tk_event start, tk_event end);
int tk_capture_begin(tk_stream s);
int tk_capture_end(tk_stream s, tk_graph *g);
int tk_graph_launch(tk_graph g, tk_stream s);
int tk_graph_destroy(tk_graph g);
/* Programmatic dependent launch for the op kernels (Hopper), on by default. */
void tk_set_pdl(int on);

/* --- fill and convert (util.cu) ----------------------------------------- */
/* Holds stream s for about ns (<= 1e9) nanoseconds: one GPU thread
 * waiting on the global timer. Timing launches it before its start event,
 * so that the work timed is queued behind it and its launch latency is
 * not measured. */
int tk_spin(uint64_t ns, tk_stream s);
/* Fills n elements of dtype dt with uniform values in [-scale, scale)
 * drawn from a counter-based hash of (seed, index). */
int tk_fill_random(void *p, int dt, size_t n, uint64_t seed, float scale, tk_stream s);
/* Fills n elements with a constant. */
int tk_fill_const(void *p, int dt, size_t n, float value, tk_stream s);
/* Converts n elements between float dtypes (f32, bf16, f16). */
int tk_convert(void *dst, int dst_dt, const void *src, int src_dt, size_t n, tk_stream s);

/* --- embedding and row gathers (embed.cu) ------------------------------- */
/* out[t, :] = table[tokens[t], :] for t < T; table [vocab, D] of table_dt. */
int tk_embed(void *out, const void *table, int table_dt, const int32_t *tokens, int T, int D,
             int vocab, tk_stream s);
/* out[i, :] = x[rows[i], :] for i < n; elements of dt. */
int tk_gather_rows(void *out, const void *x, int dt, const int32_t *rows, int n, int D,
                   int T, tk_stream s);

/* --- norms (norm.cu) ---------------------------------------------------- */
int tk_rmsnorm(void *out, const void *x, const void *w, int w_dt, int rows, int D, float eps,
               tk_stream s);
/* residual += x; out = rmsnorm(residual) * w. */
int tk_add_rmsnorm(void *out, void *residual, const void *x, const void *w, int w_dt, int rows,
                   int D, float eps, tk_stream s);
/* In place over heads of head_dim starting at col_start of each row of x [rows, cols]. */
int tk_head_rmsnorm(void *x, int rows, int cols, int col_start, int heads, int head_dim,
                    const void *w, int w_dt, float eps, tk_stream s);

/* --- activation (activation.cu) ----------------------------------------- */
/* out[T, I] = silu(gu[:, :I]) * gu[:, I:]. */
int tk_silu_mul(void *out, const void *gu, int T, int I, tk_stream s);
/* out[T, N] += bias[N] (out of out_dt f32 or bf16). */
int tk_add_bias(void *out, int out_dt, const void *bias, int bias_dt, int T, int N,
                tk_stream s);

/* --- rope + kv write (rope.cu) ------------------------------------------ */
/* qkv [T, (Hq+2Hkv)*D] bf16 -> q [T, Hq*D] rotated; k rotated and v written
 * to k_cache/v_cache [slots, Hkv, D] bf16 at slots[t]; inv_freq [D/2] f32
 * on the device. */
int tk_rope_write_kv(void *q, const void *qkv, void *k_cache, void *v_cache,
                     const int32_t *positions, const int32_t *slots, const float *inv_freq,
                     float attn_factor, int T, int Hq, int Hkv, int D, tk_stream s);

/* --- paged attention (attention.cu) -------------------------------------- */
/* Number of KV splits the attention launch will use for this shape; the
 * workspace it needs is tk_attention_workspace bytes. */
int tk_attention_splits(int T, int Hq, int Hkv, int sm_count);
size_t tk_attention_workspace(int T, int Hq, int D, int splits);
/* out/q [T, Hq*D] bf16; caches [slots, Hkv, D] bf16; row_seq[t] is the
 * sequence of row t (rows of a sequence are consecutive); block_tables
 * [num_seqs, bt_stride]. Row t attends to positions 0..positions[t].
 * decode_rows lists, in order, the num_decode rows that are their
 * sequence's only query row (decode rows; the rest are prefill rows). */
int tk_attention(void *out, const void *q, const void *k_cache, const void *v_cache,
                 const int32_t *positions, const int32_t *row_seq, const int32_t *block_tables,
                 int bt_stride, int block_size, float scale, int T, int num_seqs,
                 const int32_t *decode_rows, int num_decode, int Hq, int Hkv, int D, int splits,
                 void *workspace, tk_stream s);
/* tk_set_attention_variant picks the attention kernels (benchmarks compare
 * them) and returns the previous choice: 0 the default, 1 every row on the
 * generic CUDA-core kernel (the baseline), 2 the first fast version (a
 * separate split-combine kernel, 64-row prefill tiles), 3 the first prefill
 * kernel, 4 the balanced decode kernel (a fixed grid sharing the decode
 * keys evenly), 5 the same with tasks handed out by a counter. The first
 * use reads TOKAMAK_ATTN_VARIANT. tk_attention_splits and
 * tk_attention_workspace answer for the variant in force, so plan them
 * again after a change. The workspace must be zeroed once when allocated
 * (the decode kernels keep counters at its start, zero between calls). */
int tk_set_attention_variant(int v);
/* The attention variant in force (process-wide). */
int tk_attention_variant(void);

/* --- matmul (gemv.cu, gemm.cu) ------------------------------------------ */
/* out[T, N] = x[T, K] (bf16) . W[N, K]^T (+bias), W of w_dt (f32/bf16/f16),
 * out of out_dt (f32 or bf16). Memory-bound kernel for small T; variant
 * picks a tuning (0 default; see gemv.cu). */
int tk_gemv(void *out, int out_dt, const void *x, const void *w, int w_dt, const void *bias,
            int bias_dt, int T, int N, int K, int variant, tk_stream s);
/* Bytes of normalised x rows (T * K * 2) a norm-fused GEMV may hold in
 * shared memory: the 48 KiB a kernel gets without opting in, less room for
 * its static shared memory. */
#define TK_GEMV_NORM_SMEM_BYTES (48 * 1024 - 256)
/* tk_gemv with a fusion (bf16 W, K % 8 == 0, T <= 8 rows per call is what
 * it is fast for): norm_w != NULL makes x the residual stream and uses
 * RMSNorm(x) * norm_w (norm_dt f32/bf16/f16, eps) in its place; residual != 0
 * adds the product, rounded to bf16, into out (bf16, the residual stream)
 * instead of writing it. Not both at once. */
int tk_gemv_fused(void *out, int out_dt, const void *x, const void *w, int w_dt,
                  const void *bias, int bias_dt, const void *norm_w, int norm_dt, float eps,
                  int residual, int T, int N, int K, int variant, tk_stream s);
int tk_blas_create(tk_blas *h, size_t workspace_bytes);
int tk_blas_destroy(tk_blas h);
/* While on, a GEMM plan for a decode-sized T (<= 512) times the cuBLASLt
 * heuristic's candidates on its next call outside stream capture and keeps
 * the fastest; off (the default), new plans take the first candidate. */
int tk_blas_set_tuning(tk_blas h, int on);
/* cuBLASLt BF16 GEMM: out[T, N] = x[T, K] . W[N, K]^T, out f32 or bf16. */
int tk_blas_gemm(tk_blas h, void *out, int out_dt, const void *x, const void *w, int T, int N,
                 int K, tk_stream s);

/* --- fused sampling (sample.cu) ----------------------------------------- */
#define TK_SAMPLE_MAX_TOP 20
/* Entries of the weight exponential's mantissa table and of the race's
 * logarithm table (engine/sample). */
#define TK_SAMPLE_EXP_TABLE 1024
#define TK_SAMPLE_LOG_TABLE 256
/* One row's sampling parameters (engine/sample.Params, prepared on the
 * host): greedy != 0 takes the argmax; w_scale = engine/sample's
 * WeightScale(temperature), the factor of the weight exponential; top_k
 * active when 0 < top_k < vocab, top_p when 0 < top_p < 1; repetition is
 * 1 when off; noise_key keys the row's race noise (engine/sample's
 * NoiseKey(seed, draw)); n_top top logprobs
 * (<= TK_SAMPLE_MAX_TOP); the penalty history is entries
 * [hist_off, hist_off + hist_len) of hist_ids/hist_counts. */
typedef struct {
  unsigned long long noise_key;
  int greedy;
  float w_scale;
  int top_k;
  float top_p;
  float min_p;
  float repetition;
  float presence;
  float frequency;
  int n_top;
  int want_logprobs;
  int hist_off;
  int hist_len;
} tk_sample_params;
/* status: 0 ok, 1 no finite logit, 2 a +Inf logit. */
typedef struct {
  int token;
  int status;
  float logprob;
  int n_top;
  int top_ids[TK_SAMPLE_MAX_TOP];
  float top_lp[TK_SAMPLE_MAX_TOP];
} tk_sample_result;
/* Uploads engine/sample's exponential mantissa table (n ==
 * TK_SAMPLE_EXP_TABLE entries, host memory); tk_sample needs it first. */
int tk_sample_set_exp_table(const uint32_t *mantissas, int n);
/* Uploads engine/sample's race logarithm table (n == TK_SAMPLE_LOG_TABLE
 * floats, host memory); tk_sample needs it first. */
int tk_sample_set_log_table(const float *tab, int n);
/* Copies the SM clock of each of the first n (<= 32) phases of row 0's
 * first block in the last tk_sample (benchmarks). */
int tk_sample_phase_clocks(long long *out, int n);
/* tk_sample's flags: TK_SAMPLE_TOPK_LISTS when some row samples (not
 * greedy) with 0 < top_k <= TK_SAMPLE_TOPK_LISTS_MAX and no logprobs:
 * such rows may then take their top k from lists made in the max pass
 * (one read of the logits instead of the cut passes). */
#define TK_SAMPLE_TOPK_LISTS 1
#define TK_SAMPLE_TOPK_LISTS_MAX 64
/* TK_SAMPLE_TOPP_FAST when some row samples (not greedy) with top-p of at
 * least TK_SAMPLE_TOPP_FAST_MIN, no top-k, no min-p and no logprobs: such
 * rows may then draw from the best race keys of their max pass and cut
 * top-p from the counts of their quantized exponents made in the same
 * pass (one read instead of four), where one block samples a row. TK_SAMPLE_TOPP_FAST_ALL with it takes every such row
 * whatever its top-p (tests: small top-p falls back to the cut passes
 * often). */
#define TK_SAMPLE_TOPP_FAST 2
#define TK_SAMPLE_TOPP_FAST_ALL 4
#define TK_SAMPLE_TOPP_FAST_MIN 0.8f
/* With TK_SAMPLE_TOPP_FAST, tests only: every such row falls back to the
 * cut passes after its read, as when none of its race keys survives. */
#define TK_SAMPLE_TOPP_FAST_FALLBACK 8
/* Benchmarks: each block records its SM and its start and end
 * (%globaltimer, ns) for tk_sample_block_times. */
#define TK_SAMPLE_BLOCK_TIMES 16
/* The blocks a launch records times for (the first ones). */
#define TK_SAMPLE_BLOCK_TIMES_MAX 4096
/* Copies the SM, start and end (ns) of each of the first n
 * (<= TK_SAMPLE_BLOCK_TIMES_MAX) blocks of the last tk_sample launched
 * with TK_SAMPLE_BLOCK_TIMES, 3 values a block (later blocks are not
 * recorded); sets
 * *blocks to how many blocks that launch had (it may exceed n). Copies on
 * the legacy stream: synchronize the sampling stream first. */
int tk_sample_block_times(unsigned long long *out, int n, int *blocks);
/* Copies how many rows the one-read top-p drew (out[0]) and sent to the
 * cut passes (out[1]) since the last reset; reset != 0 zeroes them after. */
int tk_sample_topp_counts(unsigned long long *out, int reset);
/* Samples every row of logits [rows, vocab] f32 (penalties are applied in
 * place). */
int tk_sample(float *logits, int rows, int vocab, const tk_sample_params *params,
              const int32_t *hist_ids, const int32_t *hist_counts, tk_sample_result *results,
              int flags, tk_stream s);

#ifdef __cplusplus
}
#endif

#endif
