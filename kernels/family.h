// How a kernel family (kernels/<family>.h) declares its functions once for both backends: the
// signature, with its documentation, is a function type in retort::kernels, and
//   RETORT_DECLARE_KERNEL(softmax_forward, SoftmaxForward)
// declares retort::cpu::softmax_forward and retort::cuda::softmax_forward with it. The CPU
// reference is defined in kernels/cpu/<family>*.cpp and the CUDA kernel in
// kernels/cuda/<family>*.cu, each with exactly that signature. The engine calls either through
// RETORT_KERNEL (engine/kernel_call.h), writing the arguments once.
#pragma once

#define RETORT_DECLARE_KERNEL(name, Type)           \
  namespace retort::cpu {                           \
  ::retort::kernels::Type name;                     \
  }                                                 \
  namespace retort::cuda {                          \
  ::retort::kernels::Type name;                     \
  }
