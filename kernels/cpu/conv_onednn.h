// f32 convolutions through oneDNN (Debian's libdnnl), the CPU counterpart of cuDNN: its blocked
// direct kernels (nChw16c activations, blocked weights on AVX-512; nChw8c on AVX2), with
// reorders from and to retort's NCHW at each call. Primitives are built once per geometry and
// kept. The plain kernels of kernels/cpu/conv.cpp stay the reference the tests compare with,
// and run f64 and any geometry oneDNN does not take.
//
// Bits: the same command on the same machine gives the same bits (oneDNN's kernels are
// deterministic for a fixed thread count); another ISA (AVX2 vs AVX-512) or thread count may
// round differently, as OpenBLAS does.
#pragma once
#include "kernels/conv.h"

namespace retort::cpu {

// Which implementation the f32 CPU convolutions use: oneDNN where it is built in (the default),
// or the plain reference (also chosen by RETORT_CPU_CONV=reference in the environment).
enum class ConvBackend { reference, onednn };
ConvBackend conv_backend();
void set_conv_backend(ConvBackend backend);
bool onednn_available();  // built with oneDNN

namespace onednn {
// Each returns false (doing nothing) when oneDNN is not built in; throws on a oneDNN error.
bool conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
bool conv2d_backward_input(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
bool conv2d_backward_weight(const Conv2dGeometry& g, const float* x, const float* gy, float* gw);
}  // namespace onednn

}  // namespace retort::cpu
