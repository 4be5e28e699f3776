// Basic layers: construction (PyTorch default init), forward through engine ops.
#include "engine/nn/layers.h"
#include <cmath>
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/dist/shard.h"
#include "engine/dist/sync_batch_norm.h"

namespace retort::nn {

// ---------------------------------------------------------------- Linear
Linear::Linear(int64_t in, int64_t out, Generator& gen, bool has_bias) : in_features(in), out_features(out) {
  RETORT_CHECK(in > 0 && out > 0, "Linear({}, {}): sizes must be positive", in, out);
  weight = Tensor::empty({out, in});
  if (has_bias) bias = Tensor::empty({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(double(in_features));
    uniform_(bias, gen, -bound, bound);
  }
}

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features, out_features, bias.defined());
}

Tensor Linear::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() >= 1 && x.size(-1 + x.dim()) == in_features, "Linear({}, {}): input {} has last dim != {}",
               in_features, out_features, x.str(), in_features);
  return linear(x, weight, bias);
}

// ---------------------------------------------------------------- Conv2d
Conv2d::Conv2d(int64_t in, int64_t out, const Conv2dSpec& s, Generator& gen)
    : in_channels(in), out_channels(out), spec(s) {
  RETORT_CHECK(in > 0 && out > 0 && s.kernel > 0 && s.stride > 0 && s.dilation > 0 && s.padding >= 0,
               "Conv2d({}, {}): invalid sizes (kernel {}, stride {}, padding {}, dilation {})", in, out, s.kernel,
               s.stride, s.padding, s.dilation);
  RETORT_CHECK(s.groups > 0 && in % s.groups == 0 && out % s.groups == 0,
               "Conv2d({}, {}): groups={} must divide both channel counts", in, out, s.groups);
  weight = Tensor::empty({out, in / s.groups, s.kernel, s.kernel});
  if (s.bias) bias = Tensor::empty({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  reset_parameters(gen);
}

void Conv2d::reset_parameters(Generator& gen) {
  kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(double(fan_in(weight)));
    uniform_(bias, gen, -bound, bound);
  }
}

int64_t Conv2d::out_size(int64_t in) const {
  return (in + 2 * spec.padding - spec.dilation * (spec.kernel - 1) - 1) / spec.stride + 1;
}

std::string Conv2d::extra_repr() const {
  return fmt::format("{}, {}, kernel_size={}, stride={}, padding={}{}{}{}", in_channels, out_channels, spec.kernel,
                     spec.stride, spec.padding, spec.dilation != 1 ? fmt::format(", dilation={}", spec.dilation) : "",
                     spec.groups != 1 ? fmt::format(", groups={}", spec.groups) : "", bias.defined() ? "" : ", bias=False");
}

Tensor Conv2d::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() == 4 && x.size(1) == in_channels, "Conv2d({}, {}): input {} is not [N, {}, H, W]", in_channels,
               out_channels, x.str(), in_channels);
  Conv2dOptions o;
  o.stride = {spec.stride, spec.stride};
  o.padding = {spec.padding, spec.padding};
  o.dilation = {spec.dilation, spec.dilation};
  o.groups = spec.groups;
  return conv2d(x, weight, bias, o);
}

// ---------------------------------------------------------------- BatchNorm2d
BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_) : channels(c), eps(eps_), momentum(momentum_) {
  RETORT_CHECK(c > 0, "BatchNorm2d({}): channels must be positive", c);
  weight = Tensor::empty({c});
  bias = Tensor::empty({c});
  running_mean = Tensor::empty({c});
  running_var = Tensor::empty({c});
  num_batches_tracked = Tensor::zeros({}, DType::i64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
  reset_parameters();
}

void BatchNorm2d::reset_parameters() {
  // Statistics are state, not initialisation: always set, even under SkipInitGuard.
  weight.fill_(1.0);
  bias.fill_(0.0);
  running_mean.fill_(0.0);
  running_var.fill_(1.0);
  num_batches_tracked.fill_(0.0);
}

std::string BatchNorm2d::extra_repr() const {
  return fmt::format("{}, eps={}, momentum={}", channels, eps, momentum);
}

Tensor BatchNorm2d::forward(const Tensor& x) { return forward_act(x, Tensor(), false); }

Tensor BatchNorm2d::forward_act(const Tensor& x, const Tensor& residual, bool relu) {
  RETORT_CHECK(x.dim() == 4 && x.size(1) == channels, "BatchNorm2d({}): input {} is not [N, {}, H, W]", channels,
               x.str(), channels);
  if (is_training() && !dist::current_shard().repeat) num_batches_tracked.add_(1.0);
  if (dist::Communicator* group = dist::current_shard().sync_bn; group && is_training()) {
    Tensor y = dist::sync_batch_norm2d(x, weight, bias, running_mean, running_var, momentum, eps, *group,
                                       dist::current_shard().global_rows);
    if (residual.defined()) y = add(y, residual);
    return relu ? retort::relu(y) : y;
  }
  if (!residual.defined() && !relu)
    return batch_norm2d(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
  return batch_norm2d_act(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, residual, relu);
}

// ---------------------------------------------------------------- LayerNorm
LayerNorm::LayerNorm(int64_t d, double eps_, bool affine) : dim(d), eps(eps_) {
  RETORT_CHECK(d > 0, "LayerNorm({}): dim must be positive", d);
  if (affine) {
    weight = Tensor::ones({d});
    bias = Tensor::zeros({d});
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string LayerNorm::extra_repr() const { return fmt::format("{}, eps={}", dim, eps); }

Tensor LayerNorm::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() >= 1 && x.size(x.dim() - 1) == dim, "LayerNorm({}): input {} has last dim != {}", dim, x.str(),
               dim);
  return layer_norm(x, weight, bias, eps);
}

// ---------------------------------------------------------------- Dropout
Dropout::Dropout(double p_, Generator& gen) : p(p_), gen_(gen.next_u64()) {
  RETORT_CHECK(p >= 0.0 && p < 1.0, "Dropout: p={} must be in [0, 1)", p);
}

std::string Dropout::extra_repr() const { return fmt::format("p={}", p); }

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  const dist::Shard& shard = dist::current_shard();
  if (shard.count == 1) return dropout(x, p, true, gen_);
  // Shard `index` of `count` equal slices: the mask elements the whole batch draws for this
  // slice (the generator moves on by the whole batch's count, as on every other shard).
  Generator slice_gen(gen_.seed());
  slice_gen.set_state(gen_.seed(), gen_.advance(uint64_t(x.numel()) * uint64_t(shard.count)) +
                                       uint64_t(x.numel()) * uint64_t(shard.index));
  return dropout(x, p, true, slice_gen);
}

// ---------------------------------------------------------------- Sequential
Sequential::Sequential(const std::vector<ModulePtr>& modules) {
  for (auto& m : modules) push_back(m);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : items_) h = m->forward(h);
  return h;
}

}  // namespace retort::nn
