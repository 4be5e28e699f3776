// cuBLAS / cuBLASLt wrappers: one handle each per process, bound to the engine stream.
// cuBLAS is column-major: row-major C = A B is computed as C^T = B^T A^T (operands swapped).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <climits>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"
#include "kernels/math_mode.h"
#include "kernels/matmul.h"

namespace retort::cuda {
namespace {
#define RETORT_CUBLAS_CHECK(expr)                                                                  \
  do {                                                                                             \
    cublasStatus_t st__ = (expr);                                                                  \
    if (st__ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::retort::raise("cuBLAS error in ", #expr, " (", __FILE__, ":", __LINE__, "): ", cublasGetStatusString(st__)); \
  } while (0)

cublasHandle_t blas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    RETORT_CUBLAS_CHECK(cublasCreate(&handle));
    RETORT_CUBLAS_CHECK(cublasSetStream(handle, stream()));
    RETORT_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));  // no TF32: parity with the CPU
    return handle;
  }();
  return h;
}

cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t handle;
    RETORT_CUBLAS_CHECK(cublasLtCreate(&handle));
    return handle;
  }();
  return h;
}

constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;
void* lt_workspace() {
  static void* ws = [] {
    int dev = 0;
    RETORT_CUDA_CHECK(cudaGetDevice(&dev));
    return device_alloc(kLtWorkspaceBytes, dev);  // kept for the life of the process
  }();
  return ws;
}

cudaDataType_t data_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f64: return CUDA_R_64F;
    case DType::bf16: return CUDA_R_16BF;
    default: raise("gemm: dtype ", t, " is not supported on CUDA");
  }
}

// Largest power of two (at most 256) dividing the address: cuBLASLt assumes 256 unless told.
uint32_t alignment_of(const void* p) {
  uint32_t a = 256;
  while (a > 1 && (reinterpret_cast<uintptr_t>(p) % a) != 0) a >>= 1;
  return a;
}

// f64 computes in f64; f32 in plain f32 FMA, or on TF32 tensor cores inside a tf32 precision
// scope (kernels/math_mode.h); bf16 accumulates in f32.
cublasComputeType_t f32_compute_type(DType dtype) {
  if (dtype == DType::f64) return CUBLAS_COMPUTE_64F;
  if (dtype == DType::f32 && kernels::tf32_allowed()) return CUBLAS_COMPUTE_32F_FAST_TF32;
  return CUBLAS_COMPUTE_32F;
}

int as_int(int64_t v, const char* what) {
  RETORT_REQUIRE(v >= 0 && v <= INT_MAX, "gemm: ", what, " = ", v, " exceeds the cuBLAS int range");
  return int(v);
}
}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const cudaDataType_t dt = data_type(g.dtype);
  const bool f64 = g.dtype == DType::f64;
  const cublasComputeType_t compute = f32_compute_type(g.dtype);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const float alpha_f = float(g.alpha), beta_f = float(g.beta);
  const void* alpha = f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f);
  const void* beta = f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f);
  // Column-major view: C^T[n, m] = op(B)^T[n, k] op(A)^T[k, m].
  const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = as_int(g.n, "n"), n = as_int(g.m, "m"), k = as_int(g.k, "k");
  // cuBLAS wants ld >= 1 even for empty dims.
  const int ld_first = std::max(1, as_int(g.ldb, "ldb")), ld_second = std::max(1, as_int(g.lda, "lda"));
  const int ldc = std::max(1, as_int(g.ldc, "ldc"));
  RETORT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_handle(), op_first, op_second, m, n, k, alpha, g.b, dt, ld_first,
                                                 (long long)g.stride_b, g.a, dt, ld_second, (long long)g.stride_a,
                                                 beta, g.c, dt, ldc, (long long)g.stride_c,
                                                 as_int(g.batch, "batch"), compute, CUBLAS_GEMM_DEFAULT));
}

namespace {
// A cuBLASLt product with an epilogue, column-major: D[m, n] = op(A) op(B), where A is stored as
// a column-major [a_rows, a_cols] matrix (ld a_rows) and B as [b_rows, b_cols] (ld b_rows).
struct LtProduct {
  DType dtype;
  const void* a;
  int64_t a_rows, a_cols;
  bool trans_a;
  const void* b;
  int64_t b_rows, b_cols;
  bool trans_b;
  void* d;
  int64_t m, n;
  cublasLtEpilogue_t epilogue;
  void* bias;  // the bias read (BIAS) or the bias gradient written (BGRADA/BGRADB)
};

// Runs it, or returns false when cuBLASLt offers no algorithm for it (the caller falls back).
bool run_lt_product(const LtProduct& p) {
  const cudaDataType_t dt = data_type(p.dtype);
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool done = false;
  auto cleanup = [&] {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  };
  auto set_alignment = [&](cublasLtMatmulPreferenceAttributes_t which, const void* ptr) {
    uint32_t align = alignment_of(ptr);
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, which, &align, sizeof(align)));
  };
  try {
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, f32_compute_type(p.dtype), CUDA_R_32F));
    cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    cublasLtEpilogue_t epi = p.epilogue;
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dt, sizeof(dt)));
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, dt, uint64_t(p.a_rows), uint64_t(p.a_cols), p.a_rows));
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, dt, uint64_t(p.b_rows), uint64_t(p.b_cols), p.b_rows));
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, dt, uint64_t(p.m), uint64_t(p.n), p.m));
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws_bytes = kLtWorkspaceBytes;
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                             sizeof(ws_bytes)));
    set_alignment(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.a);
    set_alignment(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.b);
    set_alignment(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.d);
    set_alignment(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.d);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle(), op, la, lb, ld, ld, pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
      const float alpha = 1.f, beta = 0.f;
      RETORT_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), op, &alpha, p.a, la, p.b, lb, &beta, p.d, ld, p.d, ld,
                                         &result.algo, lt_workspace(), kLtWorkspaceBytes, stream()));
      done = true;
    }
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
  return done;
}

bool lt_epilogue_dtype(DType dtype) { return dtype == DType::f32 || dtype == DType::bf16; }  // no f64 epilogues
}  // namespace

bool linear_bias_fused(DType dtype, const void* x, const void* w, const void* bias, void* out, int64_t M, int64_t N,
                       int64_t K) {
  if (!lt_epilogue_dtype(dtype) || M == 0 || N == 0 || K == 0) return false;
  // Column-major: D^T[N, M] = W[N, K] (row-major [N, K] read as col-major [K, N], transposed) * X^T[K, M] + bias.
  return run_lt_product({dtype, w, K, N, true, x, K, M, false, out, N, M, CUBLASLT_EPILOGUE_BIAS,
                         const_cast<void*>(bias)});
}

bool linear_weight_bias_grad_fused(DType dtype, const void* g, const void* x, void* grad_w, void* grad_b, int64_t M,
                                   int64_t N, int64_t K) {
  if (!lt_epilogue_dtype(dtype) || M == 0 || N == 0 || K == 0) return false;
  // Column-major: dW^T[K, N] = X^T[K, M] (row-major X [M, K] as stored) * G[M, N] (row-major G [M, N] read as
  // col-major [N, M], transposed); the bias gradient reduces B = G over the product's k = M: sum of G's rows.
  return run_lt_product({dtype, x, K, M, false, g, N, M, true, grad_w, K, N, CUBLASLT_EPILOGUE_BGRADB, grad_b});
}

}  // namespace retort::cuda
