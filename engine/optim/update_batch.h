// UpdateBatch: one optimizer step's parameter updates, collected and then issued as
// multi-tensor kernel calls (kernels/optim.h), one per bucket of parameters that share a
// device, a dtype, an update rule and its resolved hyper-parameters. On a GPU a bucket is one
// launch (or a few, for very long lists) instead of one per parameter.
#pragma once
#include <vector>
#include "engine/tensor.h"
#include "kernels/optim.h"

namespace retort {

// Throws unless `skip_if_nonzero` is undefined or one f32 element.
void check_skip_flag(const Tensor& skip_if_nonzero);

class UpdateBatch {
 public:
  // Adds one parameter's update. All tensors are dense, of the parameter's shape, dtype and
  // device; momentum_buf is undefined exactly when h.momentum is 0. The batch holds the tensors
  // until it is destroyed, so a gradient converted for this step outlives the launch.
  // lr: null, or the group's learning rate on the parameter's device
  // (engine/optim/device_rates.h), which the kernels then read instead of h.lr.
  void add_sgd(const SgdHyper& h, const Tensor& param, const Tensor& grad, const Tensor& momentum_buf,
               const double* lr = nullptr);
  // step_count: null, or the optimizer's step count on the parameter's device
  // (engine/optim/step_counter.h), which the kernels then read instead of h.step.
  void add_adamw(const AdamWHyper& h, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                 const Tensor& exp_avg_sq, const double* step_count = nullptr, const double* lr = nullptr);

  // Issues every bucket (the SGD ones, then the AdamW ones, each in the order first seen).
  // skip_if_nonzero is undefined or one f32 element on the device of every bucket; the kernels
  // read it where they run, and write nothing when it is nonzero (kernels/optim.h).
  void launch(const Tensor& skip_if_nonzero) const;

  size_t num_buckets() const { return sgd_.size() + adamw_.size(); }

 private:
  // Bytes the launches read and write (the profiler's GB/s): every tensor read, all but the
  // gradients written.
  double bytes_moved() const;

  template <typename Hyper, typename Entry> struct Bucket {
    Device device;
    DType dtype;
    Hyper hyper;
    const double* step_count;    // AdamW's step on the device, or null
    const double* lr;            // the learning rate on the device, or null
    std::vector<Entry> tensors;  // raw pointers into `held`
    std::vector<Tensor> held;
  };
  using SgdBucket = Bucket<SgdHyper, SgdTensor>;
  using AdamwBucket = Bucket<AdamWHyper, AdamwTensor>;

  std::vector<SgdBucket> sgd_;
  std::vector<AdamwBucket> adamw_;
};

}  // namespace retort
