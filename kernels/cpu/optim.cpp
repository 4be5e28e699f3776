// CPU reference kernels for the fused SGD and AdamW updates (kernels/optim.h), single- and
// multi-tensor, and the multi-tensor sum of squares; the per-element formulas are
// kernels/optim_math.h, shared with CUDA.
#include <algorithm>
#include <vector>
#include "kernels/optim.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/optim_math.h"

namespace retort::cpu {
namespace {
bool skip_requested(const float* skip) { return skip != nullptr && *skip != 0.0f; }  // NaN is nonzero
}  // namespace

void sgd_update(DType type, void* param, const void* grad, void* momentum_buf, int64_t n, const SgdHyper& h) {
  RETORT_CPU_DISPATCH_FLOAT(type, "sgd_update", [&] {
    scalar_t* p = static_cast<scalar_t*>(param);
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    scalar_t* buf = static_cast<scalar_t*>(momentum_buf);
    const auto f = optim_math::sgd_factors<acc_t>(h);
    _Pragma("omp parallel for if (n > 32768) firstprivate(f)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t b = f.use_momentum ? acc_t(buf[i]) : acc_t(0);
      p[i] = scalar_t(optim_math::sgd_element(f, acc_t(p[i]), acc_t(g[i]), b));
      if (f.use_momentum) buf[i] = scalar_t(b);
    }
  });
}

void adamw_update(DType type, void* param, const void* grad, void* exp_avg, void* exp_avg_sq, int64_t n,
                  const AdamWHyper& h) {
  RETORT_CPU_DISPATCH_FLOAT(type, "adamw_update", [&] {
    scalar_t* p = static_cast<scalar_t*>(param);
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    scalar_t* m = static_cast<scalar_t*>(exp_avg);
    scalar_t* v = static_cast<scalar_t*>(exp_avg_sq);
    const auto f = optim_math::adamw_factors<acc_t>(h);
    _Pragma("omp parallel for if (n > 32768) firstprivate(f)")
    for (int64_t i = 0; i < n; ++i) {
      acc_t mi = acc_t(m[i]), vi = acc_t(v[i]);
      p[i] = scalar_t(optim_math::adamw_element(f, acc_t(p[i]), acc_t(g[i]), mi, vi));
      m[i] = scalar_t(mi);
      v[i] = scalar_t(vi);
    }
  });
}

// The multi-tensor forms run the single-tensor loop on each tensor in turn: the same code, so
// the same bits, and each large tensor still gets every thread.
void sgd_multi_update(DType type, const SgdTensor* tensors, int64_t count, const SgdHyper& h, const float* skip,
                      const double* lr) {
  if (skip_requested(skip)) return;
  SgdHyper at = h;
  if (lr) at.lr = *lr;
  for (int64_t t = 0; t < count; ++t)
    sgd_update(type, tensors[t].param, tensors[t].grad, tensors[t].momentum_buf, tensors[t].n, at);
}

void adamw_multi_update(DType type, const AdamwTensor* tensors, int64_t count, const AdamWHyper& h,
                        const float* skip, const double* step_count, const double* lr) {
  if (skip_requested(skip)) return;
  AdamWHyper at = h;
  if (step_count) at.step = int64_t(*step_count);
  if (lr) at.lr = *lr;
  for (int64_t t = 0; t < count; ++t)
    adamw_update(type, tensors[t].param, tensors[t].grad, tensors[t].exp_avg, tensors[t].exp_avg_sq, tensors[t].n,
                 at);
}

namespace {
// A run of at most kSumSquaresRun elements of one tensor.
struct Run {
  const void* data;
  int64_t begin, end;
};

std::vector<Run> runs_of(const DenseInput* tensors, int64_t count) {
  std::vector<Run> runs;
  for (int64_t t = 0; t < count; ++t)
    for (int64_t b = 0; b < tensors[t].n; b += kSumSquaresRun)
      runs.push_back({tensors[t].data, b, std::min(tensors[t].n, b + kSumSquaresRun)});
  return runs;
}
}  // namespace

// Each run's sum in its own slot (threads take whole runs), then the slots in order: the bits
// do not depend on the thread count.
void sum_squares_multi(DType type, const DenseInput* tensors, int64_t count, double* out) {
  const std::vector<Run> runs = runs_of(tensors, count);
  std::vector<double> sums(runs.size());
  RETORT_CPU_DISPATCH_FLOAT(type, "sum_squares_multi", [&] {
    const int64_t n_runs = int64_t(runs.size());
    _Pragma("omp parallel for schedule(static) if (n_runs > 4)")
    for (int64_t r = 0; r < n_runs; ++r) {
      const scalar_t* p = static_cast<const scalar_t*>(runs[size_t(r)].data);
      double s = 0;
      _Pragma("omp simd reduction(+ : s)")
      for (int64_t i = runs[size_t(r)].begin; i < runs[size_t(r)].end; ++i) {
        const double v = double(acc_t(p[i]));
        s += v * v;
      }
      sums[size_t(r)] = s;
    }
  });
  double total = 0;
  for (const double s : sums) total += s;
  *out = total;
}

}  // namespace retort::cpu
