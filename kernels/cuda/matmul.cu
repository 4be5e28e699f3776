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

bool linear_bias_fused(DType dtype, const void* x, const void* w, const void* bias, void* out, int64_t M, int64_t N,
                       int64_t K) {
  if (dtype != DType::f32 && dtype != DType::bf16) return false;  // f64 epilogues are not offered by cuBLASLt
  if (M == 0 || N == 0 || K == 0) return false;
  const cudaDataType_t dt = data_type(dtype);
  // Column-major: D^T[N, M] = W[N, K] (row-major [N, K] read as col-major [K, N], transposed) * X^T[K, M] + bias.
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
  try {
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, f32_compute_type(dtype), CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dt, sizeof(dt)));
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, dt, uint64_t(K), uint64_t(N), K));  // W as stored
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, dt, uint64_t(K), uint64_t(M), K));  // X as stored
    RETORT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, dt, uint64_t(N), uint64_t(M), N));  // out as stored
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws_bytes = kLtWorkspaceBytes;
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                             sizeof(ws_bytes)));
    uint32_t align_w = alignment_of(w), align_x = alignment_of(x), align_out = alignment_of(out);
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_w,
                                                             sizeof(align_w)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_x,
                                                             sizeof(align_x)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                             &align_out, sizeof(align_out)));
    RETORT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                             &align_out, sizeof(align_out)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle(), op, la, lb, ld, ld, pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
      const float alpha = 1.f, beta = 0.f;
      RETORT_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), op, &alpha, w, la, x, lb, &beta, out, ld, out, ld,
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

}  // namespace retort::cuda
