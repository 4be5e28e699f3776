// The two building blocks of ReviewKD (transfer/reviewkd.h): the attention-based fusion module
// (ABF) that mixes one student level with the fused residual of the deeper levels, and the
// hierarchical context loss (HCL) that compares one level's fused output with the teacher's map.
// Both follow mdistiller a08d46f mdistiller/distillers/ReviewKD.py (ABF: lines 106-144,
// hcl_loss: lines 11-28), which is the authors' CIFAR-100/model/reviewkd.py line for line.
//
//   ABF(x, r, out):   x [B, C_in, H, W] a student map, r the deeper level's residual (or none),
//                     out = (H_o, W_o) the teacher's map size
//     u = BN(conv1x1(x))                          [B, mid, H, W]      conv1 = conv (no bias) + BN
//     with r:  r' = nearest(r, H x W)
//              a  = sigmoid(conv1x1_bias(concat(u, r')))   [B, 2, H, W]  att_conv
//              u  = u * a[:, 0] + r' * a[:, 1]
//     u = nearest(u, H_o x W_o)  when (H, W) != (H_o, W_o)
//     returns  y = BN(conv3x3_pad1(u)) [B, C_out, H_o, W_o]  (conv2: conv, no bias, + BN)
//              and the residual u handed to the next shallower level
//   nearest(x, h x w): PyTorch's F.interpolate(mode="nearest") with an explicit size, per axis
//     src = min(floor(dst * float(in / out)), in - 1) (ATen UpSample.h nearest_idx; identity when
//     in == out, dst / 2 when out == 2 in); here index_select along dims 2 and 3.
//   HCL(s, t) for one level (s, t [B, C, h, w], t constant):
//     L = mse(s, t); w = 1; W = 1
//     for l in 4, 2, 1 with l < h:  w = w / 2; L += w * mse(pool_l(s), pool_l(t)); W += w
//     HCL = L / W            (mse: mean over all elements, pool_l: adaptive average pool to l x l)
//   The weight halves per level that is USED, so an 8x8 map weighs pools 4, 2, 1 by 1/2, 1/4, 1/8
//   (W = 1.875), a 4x4 map pools 2, 1 by 1/2, 1/4 (W = 1.75), a 2x2 map pool 1 by 1/2 (W = 1.5),
//   and a 1x1 map is plain mse. Only h is read (mdistiller's maps are square).
// Initialisation as mdistiller: conv1 and conv2 kaiming_uniform(a = 1) (bound sqrt(3 / fan_in)),
// att_conv PyTorch's Conv2d default, BatchNorm weight 1 / bias 0. Parameter names follow
// mdistiller's ABF: conv1.0.weight, conv1.1.{weight,bias}, conv2.0.weight, conv2.1.*,
// att_conv.0.{weight,bias}.
#pragma once
#include <array>
#include <memory>
#include <vector>
#include "engine/nn/layers.h"
#include "engine/random.h"

namespace retort::transfer {

// F.interpolate(x, (h, w), mode="nearest") for x [B, C, H, W]; x itself when the size matches.
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w);
// PyTorch's nearest source index for output index dst of an axis resized from in to out.
int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out);

// One level's hierarchical context loss (the teacher map is a constant); s and t must agree in shape.
Tensor hcl_level(const Tensor& student, const Tensor& teacher);
// The sum of hcl_level over the levels (mdistiller's hcl_loss).
Tensor hcl_loss(const std::vector<Tensor>& student, const std::vector<Tensor>& teacher);

// The element-wise sigmoid as a module (att_conv.1).
class SigmoidModule : public nn::Module {
 public:
  std::string type_name() const override { return "Sigmoid"; }
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
};

class Abf : public nn::Module {
 public:
  // fuse: the level has a deeper residual to mix in (every level but the deepest).
  Abf(int64_t in_channels, int64_t mid_channels, int64_t out_channels, bool fuse, Generator& gen);
  std::string type_name() const override { return "ABF"; }
  std::string extra_repr() const override;

  struct Output {
    Tensor out;       // [B, C_out, H_o, W_o]: compared with the teacher's map
    Tensor residual;  // [B, mid, H_o, W_o]: handed to the next shallower level
  };
  // residual: the deeper level's (required exactly when fuse); out_size: the teacher's map size.
  Output forward(const Tensor& x, const Tensor& residual, std::array<int64_t, 2> out_size);
  // The unfused form at x's own size (only for a module built without fuse).
  Tensor forward(const Tensor& x) override;

  bool fuse() const { return att_conv != nullptr; }
  std::shared_ptr<nn::Conv2d> conv1_conv() const { return conv1->at<nn::Conv2d>(0); }
  std::shared_ptr<nn::BatchNorm2d> conv1_bn() const { return conv1->at<nn::BatchNorm2d>(1); }
  std::shared_ptr<nn::Conv2d> conv2_conv() const { return conv2->at<nn::Conv2d>(0); }
  std::shared_ptr<nn::BatchNorm2d> conv2_bn() const { return conv2->at<nn::BatchNorm2d>(1); }
  std::shared_ptr<nn::Conv2d> att() const { return att_conv ? att_conv->at<nn::Conv2d>(0) : nullptr; }

  int64_t in_channels, mid_channels, out_channels;
  std::shared_ptr<nn::Sequential> conv1, conv2, att_conv;  // att_conv null without fuse
};

}  // namespace retort::transfer
