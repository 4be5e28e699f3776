// Float exp, erf and tanh written so that a loop calling them vectorises: no branches, no
// library calls, integer tricks through bit casts. The C library's expf/erff are scalar calls
// (glibc's vector variants need -ffast-math), which left exact GELU, sigmoid and softmax-like
// loops at one element per call. VecMath<A> is what the CPU unary kernels compute with
// (kernels/unary_math.h's Math parameter): these for float, the C library for double, so the
// f64 reference and its finite-difference checks are unchanged.
//
// Accuracy (checked against double precision over [-20, 20] in tests/ops/test_vec_math.cpp):
// exp within 1 ulp where the result is a normal float (below -87.3 it returns 0 where expf
// returns a subnormal: an absolute error under 1.2e-38); erf within 1.4e-7 absolute (2.5 ulp near
// +-1); tanh within 1e-7 absolute. NaN in gives NaN out; +-inf give exp's inf/0 and erf's +-1.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include "kernels/unary_math.h"

namespace retort::cpu {

// Forced inline: an out-of-line call per element keeps the calling loop scalar.
#define RETORT_VEC_INLINE [[gnu::always_inline]] inline

RETORT_VEC_INLINE float vec_exp(float x) {
  // exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts (Cody-Waite), and
  // exp(r) on [-ln2/2, ln2/2] by Cephes' degree-6 polynomial.
  const bool nan = x != x;
  const float xc = nan ? 0.f : (x > 88.7228f ? 88.7228f : (x < -87.3365f ? -87.3365f : x));
  // round to nearest by the 1.5 * 2^23 trick (vectorises without SSE4.1's roundps)
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.f;
  // 2^n by its exponent bits; n in [-126, 128]: 2^128 would overflow the bits, so scale twice.
  const int32_t ni = int32_t(n);
  const int32_t half = ni / 2;
  const float scale_a = std::bit_cast<float>((half + 127) << 23);
  const float scale_b = std::bit_cast<float>((ni - half + 127) << 23);
  float y = p * scale_a * scale_b;
  y = x > 88.7228f ? INFINITY : y;
  y = x < -87.3365f ? 0.f : y;
  return nan ? x : y;
}

RETORT_VEC_INLINE float vec_erf(float x) {
  // Two fits, both computed, one kept (branch-free), made for retort by least squares in double
  // (bench/cpu/fit_erf.py): below 0.9, erf(x) = x P(x^2) with P of degree 6 (relative error);
  // from 0.9 to 4, erf(x) = 1 - exp(-x^2) Q(1/x) with Q of degree 10 (erfc's relative error);
  // beyond 4, erf is +-1 in float.
  const bool nan = x != x;
  const float xc = nan ? 0.f : (x > 4.f ? 4.f : (x < -4.f ? -4.f : x));
  const float ax = xc < 0.f ? -xc : xc;
  const float u = xc * xc;
  float p = 8.227275975514203e-05f;
  p = p * u + -0.0008109841728582978f;
  p = p * u + 0.005198284983634949f;
  p = p * u + -0.02685839869081974f;
  p = p * u + 0.1128368079662323f;
  p = p * u + -0.37612631916999817f;
  p = p * u + 1.128379225730896f;
  const float near_zero = xc * p;
  const float t = 1.f / (ax < 0.9f ? 0.9f : ax);
  float q = -0.024808121845126152f;
  q = q * t + 0.18245823681354523f;
  q = q * t + -0.5888446569442749f;
  q = q * t + 1.0777720212936401f;
  q = q * t + -1.1780040264129639f;
  q = q * t + 0.6683948636054993f;
  q = q * t + 0.03505420684814453f;
  q = q * t + -0.31659919023513794f;
  q = q * t + 0.009050608612596989f;
  q = q * t + 0.5630512833595276f;
  q = q * t + 5.83032779104542e-05f;
  const float tail = 1.f - vec_exp(-u) * q;
  const float y = ax < 0.9f ? near_zero : (xc < 0.f ? -tail : tail);
  return nan ? x : y;
}

RETORT_VEC_INLINE float vec_tanh(float x) {
  // tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|); near 0 the odd Taylor series, where the
  // subtraction would lose digits.
  const float ax = x < 0.f ? -x : x;
  const float e = vec_exp(-2.f * ax);
  const float big = (1.f - e) / (1.f + e);
  const float x2 = x * x;
  float series = 0.00886323552990220f;  // 1382/155925: odd Taylor terms up to x^11
  series = series * x2 + -0.0218694885361552f;
  series = series * x2 + 0.0539682539682540f;
  series = series * x2 + -0.133333333333333f;
  series = series * x2 + 0.333333333333333f;
  const float small = ax - ax * x2 * series;
  const float t = ax < 0.3f ? small : big;
  return x != x ? x : (x < 0.f ? -t : t);
}

template <typename A>
struct VecMath : unary_math::M<A> {};
template <>
struct VecMath<float> : unary_math::M<float> {
  RETORT_VEC_INLINE static float exp(float x) { return vec_exp(x); }
  RETORT_VEC_INLINE static float erf(float x) { return vec_erf(x); }
  RETORT_VEC_INLINE static float tanh(float x) { return vec_tanh(x); }
};

}  // namespace retort::cpu
