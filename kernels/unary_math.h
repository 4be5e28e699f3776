// Per-element formulas of the unary ops and their derivatives, compiled for the host (CPU
// reference) and the device (CUDA kernels) from this one source. A is float (f32, bf16) or
// double (f64); the C math functions are named explicitly (expf / exp) so both compilers pick
// the same precision.
#pragma once
#include <math.h>
#include "kernels/unary.h"
#include "core/layout.h"

namespace retort::unary_math {

template <typename A> struct M;
template <> struct M<float> {
  static RETORT_HD float exp(float x) { return ::expf(x); }
  static RETORT_HD float log(float x) { return ::logf(x); }
  static RETORT_HD float sqrt(float x) { return ::sqrtf(x); }
  static RETORT_HD float pow(float x, float p) { return ::powf(x, p); }
  static RETORT_HD float erf(float x) { return ::erff(x); }
  static RETORT_HD float tanh(float x) { return ::tanhf(x); }
};
template <> struct M<double> {
  static RETORT_HD double exp(double x) { return ::exp(x); }
  static RETORT_HD double log(double x) { return ::log(x); }
  static RETORT_HD double sqrt(double x) { return ::sqrt(x); }
  static RETORT_HD double pow(double x, double p) { return ::pow(x, p); }
  static RETORT_HD double erf(double x) { return ::erf(x); }
  static RETORT_HD double tanh(double x) { return ::tanh(x); }
};

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// Math is the source of exp, erf, ...: M<A> (the C library) by default; the CPU kernels pass
// cpu::VecMath<float> (kernels/cpu/vec_math.h), whose float exp and erf vectorise.
// Always inlined: the kernels call these with a constant op, so the switch folds away and the
// CPU loops vectorise (GCC would otherwise keep this large function out of line, one call per
// element).
#if defined(__CUDACC__)
#define RETORT_UNARY_INLINE __forceinline__
#else
#define RETORT_UNARY_INLINE [[gnu::always_inline]] inline
#endif

template <typename A, typename Math = M<A>>
RETORT_UNARY_INLINE RETORT_HD A forward(UnaryOp op, A x, A p0, A p1) {
  switch (op) {
    case UnaryOp::exp: return Math::exp(x);
    case UnaryOp::log: return Math::log(x);
    case UnaryOp::sqrt: return Math::sqrt(x);
    case UnaryOp::pow: return Math::pow(x, p0);
    case UnaryOp::abs: return x < A(0) ? -x : (x == A(0) ? A(0) : x);
    case UnaryOp::clamp: return x < p0 ? p0 : (x > p1 ? p1 : x);  // NaN passes through
    case UnaryOp::relu: return x < A(0) ? A(0) : x;                // NaN passes through
    case UnaryOp::gelu: return A(0.5) * x * (A(1) + Math::erf(x * A(kInvSqrt2)));
    case UnaryOp::sigmoid: return A(1) / (A(1) + Math::exp(-x));
    case UnaryOp::tanh: return Math::tanh(x);
    case UnaryOp::add_scalar: return x + p0;
    case UnaryOp::mul_scalar: return x * p0;
    case UnaryOp::rsub_scalar: return p0 - x;
    case UnaryOp::rdiv_scalar: return p0 / x;
  }
  return x;
}

// d(loss)/dx given g = d(loss)/dy and s = the saved value (y for exp/sqrt/sigmoid/tanh, else x).
template <typename A, typename Math = M<A>>
RETORT_UNARY_INLINE RETORT_HD A backward(UnaryOp op, A g, A s, A p0, A p1) {
  switch (op) {
    case UnaryOp::exp: return g * s;
    case UnaryOp::log: return g / s;
    case UnaryOp::sqrt: return g * A(0.5) / s;
    case UnaryOp::pow: return p0 == A(0) ? A(0) : g * p0 * Math::pow(s, p0 - A(1));
    case UnaryOp::abs: return s > A(0) ? g : (s < A(0) ? -g : A(0));
    case UnaryOp::clamp: return (s >= p0 && s <= p1) ? g : A(0);
    case UnaryOp::relu: return s > A(0) ? g : A(0);
    case UnaryOp::gelu: {
      A cdf = A(0.5) * (A(1) + Math::erf(s * A(kInvSqrt2)));
      A pdf = A(kInvSqrt2Pi) * Math::exp(A(-0.5) * s * s);
      return g * (cdf + s * pdf);
    }
    case UnaryOp::sigmoid: return g * s * (A(1) - s);
    case UnaryOp::tanh: return g * (A(1) - s * s);
    case UnaryOp::add_scalar: return g;
    case UnaryOp::mul_scalar: return g * p0;
    case UnaryOp::rsub_scalar: return -g;
    case UnaryOp::rdiv_scalar: return -g * p0 / (s * s);
  }
  return g;
}

}  // namespace retort::unary_math
