// Transformer pieces with timm's parameter names: MultiheadSelfAttention (qkv [3*dim, dim],
// proj [dim, dim]; fused scaled_dot_product_attention) and Mlp (fc1, exact GELU, fc2).
#pragma once
#include <memory>
#include "engine/nn/layers.h"

namespace retort::nn {

// x [B, N, dim] -> [B, N, dim].
class MultiheadSelfAttention : public Module {
 public:
  MultiheadSelfAttention(int64_t dim, int64_t num_heads, Generator& gen, bool qkv_bias = true);
  std::string type_name() const override { return "Attention"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;

  int64_t dim, num_heads, head_dim;
  std::shared_ptr<Linear> qkv, proj;
};

// x [..., in] -> fc2(gelu(fc1(x))) [..., out]; optional dropout after each linear.
class Mlp : public Module {
 public:
  Mlp(int64_t in_features, int64_t hidden_features, int64_t out_features, Generator& gen, double drop = 0.0);
  std::string type_name() const override { return "Mlp"; }
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<Dropout> drop;  // null when drop == 0
};

}  // namespace retort::nn
