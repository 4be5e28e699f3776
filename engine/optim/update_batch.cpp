// UpdateBatch: buckets by (device, dtype, hyper-parameters), one multi-tensor call per bucket.
#include "engine/optim/update_batch.h"
#include "engine/error.h"
#include "engine/kernel_call.h"
#include "engine/profiler.h"

namespace retort {
namespace {
// The bucket of `buckets` for (param's device and dtype, h, step count, lr), appended when there
// is none yet.
template <typename Bucket, typename Hyper>
Bucket& bucket_for(std::vector<Bucket>& buckets, const Hyper& h, const Tensor& param, const double* step_count,
                   const double* lr) {
  for (Bucket& b : buckets)
    if (b.device == param.device() && b.dtype == param.dtype() && b.hyper == h && b.step_count == step_count &&
        b.lr == lr)
      return b;
  buckets.push_back(Bucket{param.device(), param.dtype(), h, step_count, lr, {}, {}});
  return buckets.back();
}

void check_dense_like(const Tensor& t, const Tensor& param, const char* what) {
  RETORT_CHECK(t.defined() && t.shape() == param.shape() && t.dtype() == param.dtype() &&
                   t.device() == param.device() && t.is_contiguous(),
               "UpdateBatch: the {} is {} but the parameter is {} (it must match and be contiguous)", what,
               t.defined() ? t.str() : "undefined", param.str());
}

// The flag's element on `device`, or null without a flag.
const float* skip_pointer(const Tensor& skip, Device device) {
  if (!skip.defined()) return nullptr;
  RETORT_CHECK(skip.device() == device, "optimizer step: the skip flag is on {} but parameters are on {}",
               skip.device().str(), device.str());
  return static_cast<const float*>(skip.raw_data());
}
}  // namespace

void UpdateBatch::add_sgd(const SgdHyper& h, const Tensor& param, const Tensor& grad, const Tensor& momentum_buf,
                          const double* lr) {
  RETORT_CHECK(param.is_contiguous(), "UpdateBatch: the parameter {} is not contiguous", param.str());
  check_dense_like(grad, param, "gradient");
  RETORT_CHECK(momentum_buf.defined() == (h.momentum != 0.0),
               "UpdateBatch: an SGD momentum buffer is needed exactly when momentum is nonzero");
  if (momentum_buf.defined()) check_dense_like(momentum_buf, param, "momentum buffer");
  SgdBucket& b = bucket_for(sgd_, h, param, nullptr, lr);
  b.tensors.push_back(SgdTensor{param.raw_data(), grad.raw_data(),
                                momentum_buf.defined() ? momentum_buf.raw_data() : nullptr, param.numel()});
  b.held.insert(b.held.end(), {param, grad, momentum_buf});
}

void UpdateBatch::add_adamw(const AdamWHyper& h, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                            const Tensor& exp_avg_sq, const double* step_count, const double* lr) {
  RETORT_CHECK(param.is_contiguous(), "UpdateBatch: the parameter {} is not contiguous", param.str());
  check_dense_like(grad, param, "gradient");
  check_dense_like(exp_avg, param, "exp_avg");
  check_dense_like(exp_avg_sq, param, "exp_avg_sq");
  AdamwBucket& b = bucket_for(adamw_, h, param, step_count, lr);
  b.tensors.push_back(
      AdamwTensor{param.raw_data(), grad.raw_data(), exp_avg.raw_data(), exp_avg_sq.raw_data(), param.numel()});
  b.held.insert(b.held.end(), {param, grad, exp_avg, exp_avg_sq});
}

double UpdateBatch::bytes_moved() const {
  double bytes = 0;
  auto add = [&](const auto& buckets) {
    for (const auto& b : buckets) {
      const size_t per_param = b.held.size() / b.tensors.size();  // parameter, gradient, state...
      for (size_t i = 0; i < b.held.size(); ++i) {
        const bool gradient = i % per_param == 1;  // only read
        if (b.held[i].defined()) bytes += double(b.held[i].nbytes()) * (gradient ? 1 : 2);
      }
    }
  };
  add(sgd_);
  add(adamw_);
  return bytes;
}

void check_skip_flag(const Tensor& skip_if_nonzero) {
  if (!skip_if_nonzero.defined()) return;
  RETORT_CHECK(skip_if_nonzero.numel() == 1 && skip_if_nonzero.dtype() == DType::f32,
               "optimizer step: the skip flag must be one f32 element, got {}", skip_if_nonzero.str());
}

void UpdateBatch::launch(const Tensor& skip_if_nonzero) const {
  check_skip_flag(skip_if_nonzero);
  profiler::Range prof("optimizer update", profiler::Kind::op);
  if (prof.on()) prof.set_bytes(bytes_moved());
  for (const SgdBucket& b : sgd_)
    RETORT_KERNEL(b.device, sgd_multi_update, b.dtype, b.tensors.data(), int64_t(b.tensors.size()), b.hyper,
                  skip_pointer(skip_if_nonzero, b.device), b.lr);
  for (const AdamwBucket& b : adamw_)
    RETORT_KERNEL(b.device, adamw_multi_update, b.dtype, b.tensors.data(), int64_t(b.tensors.size()), b.hyper,
                  skip_pointer(skip_if_nonzero, b.device), b.step_count, b.lr);
}

}  // namespace retort
