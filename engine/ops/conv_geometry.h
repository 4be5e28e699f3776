// The geometry of a 2-D convolution (kernels/conv.h's Conv2dGeometry) from the input and weight
// shapes and the options: output size, strides, padding, dilation, groups. Shared by conv2d
// (engine/ops/conv.cpp) and the fused inference convolution (engine/ops/conv_fused.cpp); the
// shapes are checked by their callers.
#pragma once
#include "engine/ops.h"
#include "kernels/conv.h"

namespace retort {

Conv2dGeometry conv2d_geometry(const Shape& x_shape, const Shape& w_shape, const Conv2dOptions& opt);

}  // namespace retort
