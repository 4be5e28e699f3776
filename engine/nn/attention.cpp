// MultiheadSelfAttention and Mlp forward passes.
#include "engine/nn/attention.h"
#include "engine/error.h"

namespace retort::nn {

MultiheadSelfAttention::MultiheadSelfAttention(int64_t dim_, int64_t heads, Generator& gen, bool qkv_bias)
    : dim(dim_), num_heads(heads) {
  RETORT_CHECK(heads > 0 && dim_ % heads == 0, "Attention: dim {} is not divisible by num_heads {}", dim_, heads);
  head_dim = dim_ / heads;
  qkv = register_module("qkv", std::make_shared<Linear>(dim_, 3 * dim_, gen, qkv_bias));
  proj = register_module("proj", std::make_shared<Linear>(dim_, dim_, gen));
}

std::string MultiheadSelfAttention::extra_repr() const { return fmt::format("dim={}, num_heads={}", dim, num_heads); }

Tensor MultiheadSelfAttention::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() == 3 && x.size(2) == dim, "Attention(dim={}): input {} is not [B, N, {}]", dim, x.str(), dim);
  int64_t B = x.size(0), N = x.size(1);
  // [B, N, 3D] -> [B, N, 3, H, hd] -> [3, B, H, N, hd]
  Tensor qkv_heads = qkv->forward(x).reshape({B, N, 3, num_heads, head_dim}).permute({2, 0, 3, 1, 4});
  Tensor q = qkv_heads.select(0, 0), k = qkv_heads.select(0, 1), v = qkv_heads.select(0, 2);
  Tensor attended = scaled_dot_product_attention(q, k, v);  // [B, H, N, hd]
  return proj->forward(attended.transpose(1, 2).reshape({B, N, dim}));
}

Mlp::Mlp(int64_t in, int64_t hidden, int64_t out, Generator& gen, double p) {
  fc1 = register_module("fc1", std::make_shared<Linear>(in, hidden, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, out, gen));
  if (p > 0) drop = register_module("drop", std::make_shared<Dropout>(p, gen));
}

Tensor Mlp::forward(const Tensor& x) {
  Tensor h = gelu(fc1->forward(x));
  if (drop) h = drop->forward(h);
  h = fc2->forward(h);
  if (drop) h = drop->forward(h);
  return h;
}

}  // namespace retort::nn
