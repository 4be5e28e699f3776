// A frozen teacher's inference path: a separate copy of a model with its BatchNorms folded into
// the convolutions they follow, and conv (+ bias) (+ residual) (+ ReLU) run as one fused op
// (conv2d_bias_act, engine/ops.h). In distillation the teacher only runs forward, in eval mode,
// without gradients, so each such BatchNorm is a fixed per-channel affine map and folds away:
// s = gamma / sqrt(running_var + eps), w' = w * s, b' = beta - running_mean * s (+ b * s).
//
//   auto frozen = make_frozen_inference_copy(*teacher);   // teacher itself is left untouched
//   { NoGradGuard ng; logits = frozen->forward(x, &taps); }
//
// The copy has the teacher's device and dtype, is in eval mode, has no parameter requiring a
// gradient, and gives the teacher's eval-mode logits and every one of its taps (same names)
// up to rounding of the dtype. What folds, per family:
//  * ResNet (CIFAR and ImageNet, BasicBlock and Bottleneck): every BatchNorm — the stem's bn1,
//    each block's bn1/bn2 (/bn3) and each downsample's BN. conv + BN + ReLU, the downsample's
//    conv + BN, and the block's last conv + BN + shortcut + ReLU each run as one conv2d_bias_act.
//    When taps are asked for, the last block of each stage runs its last conv without the ReLU
//    (its sum is the "stage<i>.preact" tap) and applies the ReLU separately.
//  * WRN (pre-activation, BN -> ReLU -> conv): only each block's bn2, which directly follows
//    conv1 (conv1 + bn2 + ReLU becomes one fused op). Not folded: each block's bn1 and the final
//    bn1 follow a residual sum, not a convolution; block1.layer.0.bn1 follows the stem conv, but
//    that conv's raw output is the "stem" tap (and, at widen factor 1, the identity shortcut),
//    so it has to exist anyway. Those run as before.
//  * ViT: LayerNorm only, nothing to fold: a plain frozen copy.
// The folded BatchNorm modules stay in the copy with their statistics (bn_before_relu, e.g.
// OFD's margin, still reads them) but forward no longer applies them; the folded convolutions
// gain a bias, so the copy's state_dict has "<conv>.bias" entries the teacher's lacks: save the
// teacher, not the copy. The copy is inference-only: train() and then forward is an error, and
// conv2d_bias_act refuses inputs that require a gradient while grad mode is on.
#pragma once
#include <memory>
#include "models/model.h"

namespace retort::nn {
class Conv2d;
}

namespace retort::models {

// The folded, frozen copy described above. Fails for a model that is already a folded copy and
// for model classes other than ResNet, WideResNet and VisionTransformer.
std::shared_ptr<Model> make_frozen_inference_copy(const Model& teacher);

// Folds bn (eval statistics) into conv in place: conv's weight becomes w * s and its bias
// beta - mean * s (+ b * s), computed in f64 and stored in conv's dtype. bn is not changed.
void fold_batch_norm_into(nn::Conv2d& conv, const nn::BatchNorm2d& bn);

// The folded forward pieces the model families call (models/resnet.cpp, models/wrn.cpp):
// act(conv(x) + conv.bias + residual) with conv's stride/padding/dilation/groups through
// conv2d_bias_act; conv must hold a folded bias and be in eval mode.
Tensor folded_conv(const nn::Conv2d& conv, const Tensor& x, const Tensor& residual, bool relu);
// relu(conv(x) + bias + residual) as one op, or, when preact is non-null, the sum stored in
// *preact first and the ReLU applied separately.
Tensor folded_conv_add_relu(const nn::Conv2d& conv, const Tensor& x, const Tensor& residual, Tensor* preact);

}  // namespace retort::models
