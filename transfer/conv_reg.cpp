// RepDistiller's ConvReg: the learned resampling conv, BatchNorm and optional ReLU (see transfer/conv_reg.h).
#include "transfer/conv_reg.h"
#include <cmath>
#include <fmt/format.h>
#include "engine/error.h"
#include "engine/nn/init.h"

namespace retort::transfer {

std::string conv_reg_unsupported(const Shape& s, const Shape& t) {
  if (s.size() != 4 || t.size() != 4) return "ConvReg needs two maps [B, C, H, W]";
  if (s[2] == 2 * t[2] || 2 * s[2] == t[2]) return "";
  if (s[2] >= t[2] && s[3] >= t[3]) return "";
  return fmt::format("the student's {}x{} map is smaller than the teacher's {}x{} but not exactly half of it, which "
                     "RepDistiller's ConvReg cannot resample",
                     s[2], s[3], t[2], t[3]);
}

ResampleConv::ResampleConv(const Shape& s, const Shape& t, Generator& gen) {
  const std::string why = conv_reg_unsupported(s, t);
  RETORT_CHECK(why.empty(), "{}", why);
  const int64_t cs = s[1], ct = t[1];
  if (s[2] == 2 * t[2]) {
    kind = Kind::halve;
    options.stride = {2, 2};
    options.padding = {1, 1};
    weight = Tensor::empty({ct, cs, 3, 3}, DType::f32);
  } else if (2 * s[2] == t[2]) {
    kind = Kind::double_up;
    options.stride = {2, 2};
    options.padding = {1, 1};
    weight = Tensor::empty({cs, ct, 4, 4}, DType::f32);
  } else {
    kind = Kind::valid;
    weight = Tensor::empty({ct, cs, 1 + s[2] - t[2], 1 + s[3] - t[3]}, DType::f32);
  }
  bias = Tensor::empty({ct}, DType::f32);
  // PyTorch's default: kaiming_uniform(a = sqrt(5)) and a bias bound 1/sqrt(fan_in), where a
  // transposed conv's fan_in is also size(1) * receptive field of its weight.
  nn::kaiming_uniform_(weight, gen, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(double(nn::fan_in(weight)));
  nn::uniform_(bias, gen, -bound, bound);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::string ResampleConv::extra_repr() const {
  return fmt::format("weight={}, stride={}, padding={}", shape_str(weight.shape()), options.stride[0],
                     options.padding[0]);
}

Tensor ResampleConv::forward(const Tensor& x) {
  return kind == Kind::double_up ? conv_transpose2d(x, weight, bias, options) : conv2d(x, weight, bias, options);
}

ConvReg::ConvReg(const Shape& s, const Shape& t, Generator& gen, bool relu_) : relu(relu_) {
  conv = register_module("conv", std::make_shared<ResampleConv>(s, t, gen));
  bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(t[1]));
}

Tensor ConvReg::forward(const Tensor& x) {
  Tensor y = bn->forward(conv->forward(x));
  return relu ? retort::relu(y) : y;
}

}  // namespace retort::transfer
