// Basic layers: Linear, Conv2d, BatchNorm2d, LayerNorm, Dropout, ReLU, GELU, Identity and
// Sequential. Parameter names and default initialisation follow PyTorch (weight, bias,
// running_mean, running_var, num_batches_tracked; kaiming_uniform(a=sqrt(5)) for weights).
#pragma once
#include <memory>
#include <vector>
#include "engine/error.h"
#include "engine/nn/module.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace retort::nn {

// y = x W^T + b; weight [out, in], bias [out].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator& gen);  // PyTorch default

  int64_t in_features, out_features;
  Tensor weight, bias;
};

struct Conv2dSpec {
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// weight [out, in/groups, k, k], bias [out] (optional).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, const Conv2dSpec& spec, Generator& gen);
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  void reset_parameters(Generator& gen);  // PyTorch default
  // Output spatial size for an input size along one axis.
  int64_t out_size(int64_t in) const;

  int64_t in_channels, out_channels;
  Conv2dSpec spec;
  Tensor weight, bias;
};

// Batch statistics and running-stat updates in training, running stats in eval.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  // relu?(forward(x) + residual?) as one op (batch_norm2d_act), or composed under SyncBN.
  Tensor forward_act(const Tensor& x, const Tensor& residual, bool relu);
  void reset_parameters();  // weight 1, bias 0, running stats reset

  int64_t channels;
  double eps, momentum;
  // num_batches_tracked is i64 [], counted where it lives (Tensor::add_: no host read, and a
  // CUDA graph's replays count too).
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

// Normalises over the last dim.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true);
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;

  int64_t dim;
  double eps;
  Tensor weight, bias;
};

// Owns a Generator seeded from the one it is built with, so masks are reproducible.
class Dropout : public Module {
 public:
  Dropout(double p, Generator& gen);
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  Generator& generator() { return gen_; }

  double p;

 private:
  Generator gen_;
};

class ReLU : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class GELU : public Module {  // exact (erf) GELU
 public:
  std::string type_name() const override { return "GELU"; }
  Tensor forward(const Tensor& x) override { return gelu(x); }
};

class Identity : public Module {
 public:
  std::string type_name() const override { return "Identity"; }
  Tensor forward(const Tensor& x) override { return x; }
};

// Children named "0", "1", ...; forward chains them.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(const std::vector<ModulePtr>& modules);
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(items_.size()), m);
    items_.push_back(m);
    return m;
  }
  size_t size() const { return items_.size(); }
  const ModulePtr& operator[](size_t i) const { return items_.at(i); }
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto p = std::dynamic_pointer_cast<M>(items_.at(i));
    RETORT_CHECK(p != nullptr, "Sequential[{}] is a {}, not the requested type", i, items_[i]->type_name());
    return p;
  }

 private:
  std::vector<ModulePtr> items_;
};

}  // namespace retort::nn
