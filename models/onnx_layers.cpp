// The ONNX nodes of retort's layers in eval mode (see onnx_layers.h).
#include "models/onnx_layers.h"
#include <cmath>
#include "engine/error.h"
#include "engine/nn/attention.h"
#include "engine/nn/layers.h"

namespace retort::models::onnx_writer {

std::string conv2d(OnnxGraph& g, const nn::Conv2d& conv, const std::string& scope, const std::string& x) {
  const auto& s = conv.spec;
  std::vector<std::string> inputs{x, g.weight(scope + ".weight", conv.weight)};
  if (conv.bias.defined()) inputs.push_back(g.weight(scope + ".bias", conv.bias));
  return g.node("Conv", scope, inputs,
                {ints_attr("kernel_shape", {s.kernel, s.kernel}), ints_attr("strides", {s.stride, s.stride}),
                 ints_attr("pads", {s.padding, s.padding, s.padding, s.padding}),
                 ints_attr("dilations", {s.dilation, s.dilation}), int_attr("group", s.groups)});
}

std::string batch_norm(OnnxGraph& g, const nn::BatchNorm2d& bn, const std::string& scope, const std::string& x) {
  return g.node("BatchNormalization", scope,
                {x, g.weight(scope + ".weight", bn.weight), g.weight(scope + ".bias", bn.bias),
                 g.weight(scope + ".running_mean", bn.running_mean), g.weight(scope + ".running_var", bn.running_var)},
                {float_attr("epsilon", float(bn.eps))});
}

std::string conv_bn(OnnxGraph& g, const nn::Conv2d& conv, const std::string& conv_scope, const nn::BatchNorm2d& bn,
                    const std::string& bn_scope, bool bn_folded, const std::string& x) {
  if (!bn_folded) return batch_norm(g, bn, bn_scope, conv2d(g, conv, conv_scope, x));
  RETORT_CHECK(conv.bias.defined(), "{}: marked BN-folded but the convolution has no folded bias", conv_scope);
  return conv2d(g, conv, conv_scope, x);
}

std::string linear(OnnxGraph& g, const nn::Linear& fc, const std::string& scope, const std::string& x, bool two_d) {
  std::string w = g.weight(scope + ".weight", fc.weight);  // [out, in], as the state dict holds it
  std::string b = fc.bias.defined() ? g.weight(scope + ".bias", fc.bias) : "";
  if (two_d) {
    std::vector<std::string> inputs{x, w};
    if (!b.empty()) inputs.push_back(b);
    return g.node("Gemm", scope, inputs, {int_attr("transB", 1)});
  }
  std::string wt = g.node("Transpose", scope, {w}, {ints_attr("perm", {1, 0})});  // folded to a constant by runtimes
  std::string y = g.node("MatMul", scope, {x, wt});
  return b.empty() ? y : g.node("Add", scope, {y, b});
}

std::string layer_norm(OnnxGraph& g, const nn::LayerNorm& ln, const std::string& scope, const std::string& x) {
  RETORT_CHECK(ln.weight.defined() && ln.bias.defined(), "{}: a LayerNorm without weight and bias is not exportable",
               scope);
  return g.node("LayerNormalization", scope,
                {x, g.weight(scope + ".weight", ln.weight), g.weight(scope + ".bias", ln.bias)},
                {int_attr("axis", -1), float_attr("epsilon", float(ln.eps))});
}

std::string relu(OnnxGraph& g, const std::string& scope, const std::string& x) { return g.node("Relu", scope, {x}); }

std::string add(OnnxGraph& g, const std::string& scope, const std::string& a, const std::string& b) {
  return g.node("Add", scope, {a, b});
}

std::string gelu(OnnxGraph& g, const std::string& scope, const std::string& x) {
  std::string scaled = g.node("Div", scope, {x, g.f32_scalar(float(std::sqrt(2.0)))});
  std::string erf = g.node("Erf", scope, {scaled});
  std::string one_plus = g.node("Add", scope, {erf, g.f32_scalar(1.0f)});
  std::string times_x = g.node("Mul", scope, {x, one_plus});
  return g.node("Mul", scope, {times_x, g.f32_scalar(0.5f)});
}

std::string global_average_pool(OnnxGraph& g, const std::string& scope, const std::string& x) {
  std::string pooled = g.node("GlobalAveragePool", scope, {x});  // [B, C, 1, 1]
  return g.node("Flatten", scope, {pooled}, {int_attr("axis", 1)});
}

namespace {
// Head `which` (0 q, 1 k, 2 v) of qkv [B, N, 3, H, hd], as [B, H, N, hd] (or [B, H, hd, N] for k).
std::string qkv_part(OnnxGraph& g, const std::string& scope, const std::string& qkv, int64_t which, bool transposed) {
  std::string part = g.node("Gather", scope, {qkv, g.i64_scalar(which)}, {int_attr("axis", 2)});  // [B, N, H, hd]
  std::vector<int64_t> perm = transposed ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
  return g.node("Transpose", scope, {part}, {ints_attr("perm", perm)});
}
}  // namespace

std::string self_attention(OnnxGraph& g, const nn::MultiheadSelfAttention& attn, const std::string& scope,
                           const std::string& x) {
  std::string qkv = linear(g, *attn.qkv, scope + ".qkv", x, false);  // [B, N, 3D]
  // Reshape's 0 copies B and N from the input, so the batch stays symbolic.
  qkv = g.node("Reshape", scope, {qkv, g.i64_constant({0, 0, 3, attn.num_heads, attn.head_dim})});
  std::string q = qkv_part(g, scope, qkv, 0, false);
  std::string k_t = qkv_part(g, scope, qkv, 1, true);
  std::string v = qkv_part(g, scope, qkv, 2, false);
  // softmax(q k^T * scale) v, the scale applied to the scores as the engine's kernel does
  std::string scores = g.node("MatMul", scope, {q, k_t});  // [B, H, N, N]
  scores = g.node("Mul", scope, {scores, g.f32_scalar(float(1.0 / std::sqrt(double(attn.head_dim))))});
  std::string weights = g.node("Softmax", scope, {scores}, {int_attr("axis", -1)});
  std::string attended = g.node("MatMul", scope, {weights, v});  // [B, H, N, hd]
  attended = g.node("Transpose", scope, {attended}, {ints_attr("perm", {0, 2, 1, 3})});
  attended = g.node("Reshape", scope, {attended, g.i64_constant({0, 0, attn.dim})});  // [B, N, D]
  return linear(g, *attn.proj, scope + ".proj", attended, false);
}

std::string mlp(OnnxGraph& g, const nn::Mlp& m, const std::string& scope, const std::string& x) {
  std::string h = gelu(g, scope, linear(g, *m.fc1, scope + ".fc1", x, false));
  return linear(g, *m.fc2, scope + ".fc2", h, false);
}

}  // namespace retort::models::onnx_writer
