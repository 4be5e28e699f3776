// StridedWalk (kernels/cpu/strided_walk.h) against Layout::offset_of, the per-element reference:
// every index of random shapes with permuted, broadcast, sliced and size-1 dims, walked in
// random pieces; then the CPU binary and strided-copy kernels, which use it, against plain
// loops over offset_of on random values (unary ops too).
#include <doctest/doctest.h>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>
#include "kernels/copy.h"
#include "kernels/binary.h"
#include "kernels/cpu/strided_walk.h"
#include "kernels/unary.h"
#include "kernels/unary_math.h"
#include "kernels/cpu/vec_math.h"

using namespace retort;

namespace {

// A random shape of 1..5 dims (some of size 1) and, for it, a random layout over a larger
// buffer: dims permuted, some broadcast (stride 0), some stepped by 2. Returns the buffer size.
struct RandomLayouts {
  std::mt19937 rng;
  explicit RandomLayouts(unsigned seed) : rng(seed) {}
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

  std::vector<int64_t> shape() {
    std::vector<int64_t> s(size_t(pick(1, 5)));
    for (auto& d : s) d = pick(0, 3) == 0 ? 1 : pick(2, 6);
    return s;
  }
  Layout layout(const std::vector<int64_t>& shape, bool allow_broadcast, int64_t* buffer) {
    const int nd = int(shape.size());
    std::vector<int> order(shape.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int64_t> strides(shape.size());
    int64_t step = 1;
    for (int k = nd - 1; k >= 0; --k) {  // order[k] is the k-th dim from the outside in memory
      const int d = order[size_t(k)];
      if (allow_broadcast && pick(0, 3) == 0) {
        strides[size_t(d)] = 0;
        continue;
      }
      const int64_t gap = pick(0, 2) == 0 ? 2 : 1;
      strides[size_t(d)] = step * gap;
      step *= shape[size_t(d)] * gap;
    }
    *buffer = step;
    return make_layout(shape, strides);
  }
};

}  // namespace

TEST_CASE("strided walk: every index gets offset_of's offsets, whatever the pieces") {
  RandomLayouts r(11);
  for (int trial = 0; trial < 500; ++trial) {
    const auto shape = r.shape();
    int64_t size_a = 0, size_b = 0;
    const Layout la = r.layout(shape, true, &size_a), lb = r.layout(shape, false, &size_b);
    const int64_t n = la.numel();
    const cpu::StridedWalk<2> walk({&la, &lb});
    std::vector<int64_t> got_a(static_cast<size_t>(n), -1), got_b(static_cast<size_t>(n), -1);
    int64_t begin = 0;
    while (begin < n) {  // random pieces, as the threads of walk_all would take them
      const int64_t end = std::min(n, begin + r.pick(1, n));
      int64_t next = begin;
      walk.walk(begin, end, [&](int64_t i, int64_t len, const std::array<int64_t, 2>& off) {
        REQUIRE(i == next);  // runs come in order, without gaps
        for (int64_t j = 0; j < len; ++j) {
          got_a[size_t(i + j)] = off[0] + j * walk.inner_stride(0);
          got_b[size_t(i + j)] = off[1] + j * walk.inner_stride(1);
        }
        next = i + len;
      });
      REQUIRE(next == end);
      begin = end;
    }
    for (int64_t i = 0; i < n; ++i) {
      INFO("trial " << trial << " index " << i);
      REQUIRE(got_a[size_t(i)] == la.offset_of(i));
      REQUIRE(got_b[size_t(i)] == lb.offset_of(i));
    }
  }
}

TEST_CASE("strided walk: the binary and strided-copy kernels match per-element loops on random values") {
  RandomLayouts r(23);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    // Some shapes big enough for the kernels' OpenMP paths (n > 65536).
    auto shape = r.shape();
    if (trial % 10 == 0) shape = {int64_t(r.pick(30, 40)), 3, int64_t(r.pick(20, 30)), 33};
    int64_t size_a = 0, size_b = 0, size_d = 0;
    const Layout la = r.layout(shape, true, &size_a), lb = r.layout(shape, true, &size_b);
    const Layout ld = r.layout(shape, false, &size_d);
    const int64_t n = la.numel();
    std::vector<float> a(static_cast<size_t>(size_a)), b(static_cast<size_t>(size_b));
    for (auto& v : a) v = float(normal(r.rng));
    for (auto& v : b) v = float(normal(r.rng));
    INFO("trial " << trial);

    for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div, BinaryOp::maximum}) {
      std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
      cpu::binary(op, DType::f32, a.data(), la, b.data(), lb, got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float x = a[size_t(la.offset_of(i))], y = b[size_t(lb.offset_of(i))];
        want[size_t(i)] = op == BinaryOp::add ? x + y : op == BinaryOp::sub ? x - y : op == BinaryOp::mul ? x * y
                          : op == BinaryOp::div ? x / y : std::max(x, y);
      }
      CHECK(got == want);  // the same operations on the same values: bit-identical
    }

    // Unary forward (strided input) and backward (strided gradient and saved input), against the
    // same formulas in float (the kernels' accumulation type for f32, with their vectorising
    // exp/erf, cpu::VecMath): bit-identical, but for GELU's gradient (below).
    for (UnaryOp op : {UnaryOp::relu, UnaryOp::abs, UnaryOp::gelu}) {
      const UnaryParams prm{};
      std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
      cpu::unary(op, prm, DType::f32, a.data(), la, got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        want[size_t(i)] = unary_math::forward<float, cpu::VecMath<float>>(op, a[size_t(la.offset_of(i))], 0.f, 0.f);
      CHECK(got == want);
      cpu::unary_backward(op, prm, DType::f32, b.data(), lb, a.data(), la, got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        want[size_t(i)] = unary_math::backward<float, cpu::VecMath<float>>(op, b[size_t(lb.offset_of(i))], a[size_t(la.offset_of(i))], 0.f, 0.f);
      if (op != UnaryOp::gelu) {
        CHECK(got == want);
        continue;
      }
      // GELU's gradient is a longer formula: where the compiler fuses a multiply and an add
      // (FMA) differs between the vector loop and this scalar one, so allow a few roundings.
      for (int64_t i = 0; i < n; ++i) {
        const float g = b[size_t(lb.offset_of(i))];
        REQUIRE(std::abs(got[size_t(i)] - want[size_t(i)]) <= 4e-7f * (std::abs(g) + std::abs(want[size_t(i)])));
      }
    }

    // Same-type copy (a strided destination too) and a casting copy f32 -> f64.
    std::vector<float> dst(size_t(size_d), -7.0f), want_dst(size_t(size_d), -7.0f);
    cpu::strided_copy(dst.data(), DType::f32, ld, a.data(), DType::f32, la);
    for (int64_t i = 0; i < n; ++i) want_dst[size_t(ld.offset_of(i))] = a[size_t(la.offset_of(i))];
    CHECK(dst == want_dst);
    std::vector<double> cast(size_t(size_d), -7.0), want_cast(size_t(size_d), -7.0);
    cpu::strided_copy(cast.data(), DType::f64, ld, b.data(), DType::f32, lb);
    for (int64_t i = 0; i < n; ++i) want_cast[size_t(ld.offset_of(i))] = double(b[size_t(lb.offset_of(i))]);
    CHECK(cast == want_cast);
  }
}
