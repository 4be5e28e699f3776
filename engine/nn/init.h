// Weight initialisation schemes matching torch.nn.init and timm, drawn on the host from a
// retort::Generator (so the same seed gives the same weights on every device), then copied
// into the tensor. SkipInitGuard turns them into no-ops: used to build a model only to
// inspect names, shapes or parameter counts (the values are then unspecified).
#pragma once
#include "engine/random.h"
#include "engine/tensor.h"

namespace retort::nn {

enum class FanMode { fan_in, fan_out };

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (torch's rule).
int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);

void uniform_(Tensor& t, Generator& gen, double lo, double hi);
void normal_(Tensor& t, Generator& gen, double mean, double std);
// Normal(mean, std) redrawn until inside [lo, hi] (absolute bounds, like timm's trunc_normal_).
void trunc_normal_(Tensor& t, Generator& gen, double mean, double std, double lo = -2.0, double hi = 2.0);
void constant_(Tensor& t, double value);
// gain for leaky_relu with slope a: sqrt(2 / (1 + a^2)); a = 0 is ReLU's sqrt(2).
// kaiming_uniform_: U(-b, b) with b = gain * sqrt(3 / fan); kaiming_normal_: N(0, gain / sqrt(fan)).
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::fan_in);
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::fan_in);

bool init_skipped();
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace retort::nn
