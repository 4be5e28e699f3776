// The typed pointers of one CUDA batch-norm call, cast once from the untyped arguments of the
// entry points (kernels/cuda/bn_kernels.h): activations in T, weight, bias and statistics in
// T's accumulation type (kernels/norm.h). And the choice of unit width (4 elements loaded as one
// vector when the layout and alignment allow it, else 1) that the full-chip and channels-last
// kernels are compiled for.
#pragma once
#include <type_traits>
#include "kernels/cuda/common.cuh"
#include "kernels/norm.h"

namespace retort::cuda::bn {

template <typename T> struct ForwardPointers {
  using A = typename Acc<T>::type;
  const T* x;
  const A* w;
  const A* b;
  const T* residual;  // the epilogue's (null: none)
  bool relu;
  A* mean;
  A* var;
  A* invstd;
  T* y;
};

template <typename T>
ForwardPointers<T> forward_pointers(const void* x, const void* weight, const void* bias,
                                    const kernels::BnEpilogue& epi, void* mean, void* var, void* invstd, void* y) {
  using A = typename Acc<T>::type;
  return {static_cast<const T*>(x),        static_cast<const A*>(weight), static_cast<const A*>(bias),
          static_cast<const T*>(epi.residual), epi.relu,                  static_cast<A*>(mean),
          static_cast<A*>(var),            static_cast<A*>(invstd),       static_cast<T*>(y)};
}

template <typename T> struct BackwardPointers {
  using A = typename Acc<T>::type;
  const T* g;
  const T* x;
  const T* relu_y;  // the fused ReLU's output (null: no ReLU)
  const A* w;
  const A* mean;
  const A* invstd;
  T* gx;
  A* gw;
  A* gb;
  T* g_residual;
};

template <typename T>
BackwardPointers<T> backward_pointers(const void* grad_y, const void* x, const void* relu_y, const void* weight,
                                      const void* mean, const void* invstd, void* grad_x, void* grad_weight,
                                      void* grad_bias, void* grad_residual) {
  using A = typename Acc<T>::type;
  return {static_cast<const T*>(grad_y), static_cast<const T*>(x),      static_cast<const T*>(relu_y),
          static_cast<const A*>(weight), static_cast<const A*>(mean),   static_cast<const A*>(invstd),
          static_cast<T*>(grad_x),       static_cast<A*>(grad_weight),  static_cast<A*>(grad_bias),
          static_cast<T*>(grad_residual)};
}

// fn(std::integral_constant<int, 4>) when whole units of 4 elements can be loaded, else fn(<1>).
template <typename Fn> void with_unit_width(bool whole_units, Fn&& fn) {
  if (whole_units) fn(std::integral_constant<int, 4>{});
  else fn(std::integral_constant<int, 1>{});
}

}  // namespace retort::cuda::bn
