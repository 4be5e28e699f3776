// RepDistiller's ConvReg (models/util.py:131-154): the FitNets regressor, which learns the
// resampling between the student's and the teacher's map sizes as well as the channel map, and
// (without its ReLU) the AB connector. For a student map [B, C_s, H_s, W_s] and a teacher map
// [B, C_t, H_t, W_t]:
//   H_s == 2 H_t : 3x3 conv, stride 2, padding 1            (halves the map)
//   2 H_s == H_t : 4x4 transposed conv, stride 2, padding 1  (doubles it)
//   H_s >= H_t   : conv with kernel (1 + H_s - H_t) x (1 + W_s - W_t) (1x1 for equal sizes)
// every conv with a bias and PyTorch's default initialisation; then BatchNorm2d(C_t) and, with
// relu (FitNets; RepDistiller's default), a ReLU. A student map smaller than the teacher's but
// not exactly half has no ConvReg (RepDistiller raises NotImplemented): conv_reg_unsupported()
// says why before anything is built. Parameter names follow RepDistiller's: conv.weight,
// conv.bias, bn.weight, bn.bias (and bn's running statistics).
#pragma once
#include <memory>
#include <string>
#include "engine/nn/layers.h"
#include "engine/random.h"

namespace retort::transfer {

// The convolution of a ConvReg: strided, transposed or "valid" (see above).
class ResampleConv : public nn::Module {
 public:
  enum class Kind { halve, double_up, valid };
  ResampleConv(const Shape& student_map, const Shape& teacher_map, Generator& gen);
  std::string type_name() const override { return kind == Kind::double_up ? "ConvTranspose2d" : "Conv2d"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;

  Kind kind = Kind::valid;
  Conv2dOptions options;
  Tensor weight, bias;  // conv: [C_t, C_s, kh, kw]; transposed: [C_s, C_t, 4, 4] (PyTorch's layouts)
};

class ConvReg : public nn::Module {
 public:
  ConvReg(const Shape& student_map, const Shape& teacher_map, Generator& gen, bool relu = true);
  std::string type_name() const override { return "ConvReg"; }
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<ResampleConv> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  bool relu;
};

// Why a ConvReg cannot map `student_map` to `teacher_map` (both [B, C, H, W]), or "" when it can.
std::string conv_reg_unsupported(const Shape& student_map, const Shape& teacher_map);

}  // namespace retort::transfer
