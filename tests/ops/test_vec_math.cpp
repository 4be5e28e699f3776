// The vectorising float exp, erf and tanh of the CPU kernels (kernels/cpu/vec_math.h) against
// double precision on a dense grid and at the special values.
#include <doctest/doctest.h>
#include <cmath>
#include <limits>
#include "kernels/cpu/vec_math.h"

using namespace retort::cpu;

namespace {
// Distance in units in the last place of `expected` (rounded to float).
double ulps(float got, double expected) {
  const float e = float(expected);
  const double ulp = double(std::nextafter(std::fabs(e), INFINITY)) - double(std::fabs(e));
  return std::fabs(double(got) - expected) / ulp;
}
}  // namespace

TEST_CASE("vec_math: exp within 1 ulp over the normal range, inf and 0 beyond, NaN through") {
  double worst = 0;
  for (double x = -87.0; x <= 88.5; x += 0.000731) worst = std::max(worst, ulps(vec_exp(float(x)), std::exp(double(float(x)))));
  INFO("worst " << worst << " ulp");
  CHECK(worst <= 1.0);
  CHECK(vec_exp(0.f) == 1.f);
  CHECK(vec_exp(89.f) == INFINITY);
  CHECK(vec_exp(INFINITY) == INFINITY);
  CHECK(vec_exp(-90.f) == 0.f);
  CHECK(vec_exp(-INFINITY) == 0.f);
  CHECK(std::isnan(vec_exp(NAN)));
}

TEST_CASE("vec_math: erf within 1.4e-7 absolute, +-1 in the tails, odd, NaN through") {
  double worst = 0;
  for (double x = -6.0; x <= 6.0; x += 0.0001237)
    worst = std::max(worst, std::fabs(double(vec_erf(float(x))) - std::erf(double(float(x)))));
  INFO("worst " << worst);
  CHECK(worst < 1.4e-7);
  CHECK(vec_erf(0.f) == 0.f);
  CHECK(vec_erf(10.f) == doctest::Approx(1.0).epsilon(1e-7));
  CHECK(vec_erf(-INFINITY) == doctest::Approx(-1.0).epsilon(1e-7));
  CHECK(vec_erf(0.3f) == -vec_erf(-0.3f));
  CHECK(std::isnan(vec_erf(NAN)));
}

TEST_CASE("vec_math: tanh within 1e-7 absolute, small arguments relative, NaN through") {
  double worst = 0, worst_rel_small = 0;
  for (double x = -20.0; x <= 20.0; x += 0.000917) {
    const float xf = float(x);
    const double exact = std::tanh(double(xf));
    worst = std::max(worst, std::fabs(double(vec_tanh(xf)) - exact));
    if (std::fabs(xf) < 0.5 && xf != 0) worst_rel_small = std::max(worst_rel_small, std::fabs(vec_tanh(xf) / exact - 1));
  }
  INFO("worst " << worst << ", relative below 0.5: " << worst_rel_small);
  CHECK(worst < 1e-7);
  CHECK(worst_rel_small < 3e-7);
  CHECK(vec_tanh(INFINITY) == 1.f);
  CHECK(vec_tanh(-INFINITY) == -1.f);
  CHECK(std::isnan(vec_tanh(NAN)));
}
