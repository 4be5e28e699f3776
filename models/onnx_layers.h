// The ONNX nodes of retort's layers in eval mode (engine/nn/layers.h, engine/nn/attention.h), for
// the model families' exporters (models/onnx_resnet.cpp, models/onnx_vit.cpp). Each function
// takes the module, its dotted state-dict path (`scope`: its tensors become the initializers
// "<scope>.weight", "<scope>.bias", ...) and the name of its input value, adds the nodes and
// returns the name of the output value. Dropout is the identity in eval mode and emits nothing.
#pragma once
#include <string>
#include "models/onnx_graph.h"

namespace retort::nn {
class BatchNorm2d;
class Conv2d;
class LayerNorm;
class Linear;
class Mlp;
class MultiheadSelfAttention;
}  // namespace retort::nn

namespace retort::models::onnx_writer {

// Conv with the layer's stride, padding, dilation and groups; its bias when it has one.
std::string conv2d(OnnxGraph& g, const nn::Conv2d& conv, const std::string& scope, const std::string& x);
// BatchNormalization with the running statistics and the layer's eps (inference mode).
std::string batch_norm(OnnxGraph& g, const nn::BatchNorm2d& bn, const std::string& scope, const std::string& x);
// conv then BN, or, when the BN was folded into the conv (models/fold_batch_norm.h), the conv
// alone with its folded bias.
std::string conv_bn(OnnxGraph& g, const nn::Conv2d& conv, const std::string& conv_scope, const nn::BatchNorm2d& bn,
                    const std::string& bn_scope, bool bn_folded, const std::string& x);
// x W^T + b: Gemm for a [B, in] input, MatMul (+ Add) for [..., in].
std::string linear(OnnxGraph& g, const nn::Linear& fc, const std::string& scope, const std::string& x, bool two_d);
// LayerNormalization over the last axis (opset 17) with the layer's eps.
std::string layer_norm(OnnxGraph& g, const nn::LayerNorm& ln, const std::string& scope, const std::string& x);

std::string relu(OnnxGraph& g, const std::string& scope, const std::string& x);
std::string add(OnnxGraph& g, const std::string& scope, const std::string& a, const std::string& b);
// Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))) (opset 17 has no Gelu).
std::string gelu(OnnxGraph& g, const std::string& scope, const std::string& x);
// [B, C, H, W] -> [B, C]: the mean over H and W.
std::string global_average_pool(OnnxGraph& g, const std::string& scope, const std::string& x);

// timm's Attention on [B, N, D]: qkv, per-head softmax(q k^T / sqrt(head_dim)) v, proj.
std::string self_attention(OnnxGraph& g, const nn::MultiheadSelfAttention& attn, const std::string& scope,
                           const std::string& x);
// fc2(gelu(fc1(x))) on [B, N, D].
std::string mlp(OnnxGraph& g, const nn::Mlp& m, const std::string& scope, const std::string& x);

}  // namespace retort::models::onnx_writer
