// Mixed precision by autocast (PyTorch's torch.autocast for bf16, in our own rules): inside an
// AutocastScope with Precision::bf16, the ops that gain from tensor cores run in bf16 and the
// ops that need range or accumulation run in f32, whatever dtype reaches them; the weights stay
// f32 ("master weights"), each cast is an autograd node, so gradients reach them in f32, and the
// optimizer's state stays f32. Outside a scope nothing is cast and mixed dtypes stay an error.
//
// The rules (engine/autocast.cpp holds the lists; every op below applies its rule at entry):
//  * lower to bf16 (f32 inputs cast down): matmul, linear, conv2d, conv_transpose2d,
//    conv2d_bias_act, scaled_dot_product_attention.
//  * f32 (bf16 inputs cast up): softmax, log_softmax, cross_entropy, kl_div, mse_loss,
//    smooth_l1_loss, layer_norm, sum, mean, var, exp, log, sqrt, pow, l2_normalize,
//    pairwise_sq_dist, svd_right.
//  * batch_norm2d runs in its input's dtype with f32 statistics and parameters (bf16 in, bf16
//    out, as PyTorch's cuDNN batch norm), so a convolution's bf16 output stays bf16 to the next.
//  * promote (bf16 with f32 -> both f32): add, sub, mul, div, maximum, where, concat, stack.
//  * everything else runs in the dtype it is given (relu, gelu, dropout, pooling, shapes, ...).
// Backward runs with autocast off: every recorded op already has inputs of one dtype.
//
// Precision::tf32 casts nothing: it lets cuBLAS and cuDNN use TF32 tensor cores for f32
// (kernels/math_mode.h); on the CPU it is f32 (no CPU kernel has a TF32 mode).
#pragma once
#include <string>
#include <utility>
#include <vector>
#include "engine/tensor.h"

namespace retort {

enum class Precision { f32, tf32, bf16 };

const char* precision_name(Precision p);
// "f32" | "tf32" | "bf16"; anything else is a retort::Error naming the accepted values.
Precision parse_precision(const std::string& name);

namespace autocast {

// The precision of the innermost scope on this thread (f32 outside any scope).
Precision current();
// True inside a bf16 scope: the cast rules apply.
bool casting();

// The rules for one operand; identity outside a bf16 scope and for non-floating tensors.
Tensor lower(const Tensor& t);       // f32 -> bf16
Tensor to_f32(const Tensor& t);      // bf16 -> f32
// Two operands of one op: when their floating dtypes differ (bf16 and f32), both in f32.
std::pair<Tensor, Tensor> promote(const Tensor& a, const Tensor& b);
// Several operands of one op (concat, stack): all in f32 when bf16 and f32 meet.
std::vector<Tensor> promote(const std::vector<Tensor>& xs);

}  // namespace autocast

// Sets the thread's precision for its lifetime (nests; restores the previous one, TF32 too).
class AutocastScope {
 public:
  explicit AutocastScope(Precision p);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  Precision prev_;
};

}  // namespace retort
