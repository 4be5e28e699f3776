// Comparisons and selection: gt, eq, where, masked_fill, index_select, gather. Hand-computed
// values, repeated indices, error messages; gradients, bf16, transposed inputs and CUDA parity
// through the op cases (ops/op_case.h).
#include <cmath>
#include "helpers.h"
#include "ops/op_case.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, DType::f64); }
Tensor u8(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, DType::u8); }
}  // namespace

TEST_CASE("gt and eq give u8 masks") {
  Tensor m = gt(f64({-1, 0.5, 2}, {3}), 0.5);
  CHECK(m.dtype() == DType::u8);
  check_close(m, {0, 0, 1}, 0);
  check_close(gt(Tensor::from_i64({1, 2, 3}, {3}), 1.5), {0, 1, 1}, 0);
  check_close(gt(f64({1, 2, 3, 4}, {2, 2}).transpose(0, 1), 1.5), {0, 1, 1, 1}, 0);
  check_close(eq(f64({1, 2, 3, 2}, {2, 2}), f64({2}, {1})), {0, 1, 0, 1}, 0);
  // accuracy from argmax-like i64 predictions against labels
  Tensor hits = eq(Tensor::from_i64({3, 1, 2, 0}, {4}), Tensor::from_i64({3, 0, 2, 0}, {4}));
  CHECK(hits.dtype() == DType::u8);
  check_close(hits, {1, 0, 1, 1}, 0);
  CHECK(sum(hits.to(DType::f32)).item() == 3.0);
  check_close(eq(Tensor::from_i64({1, 2}, {2, 1}), Tensor::from_i64({1, 2, 3}, {1, 3})), {1, 0, 0, 0, 1, 0}, 0);
}

TEST_CASE("where and masked_fill with broadcasting") {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor mask = u8({1, 0}, {2, 1});
  check_close(where(mask, a, Tensor::scalar(-1, DType::f64)), {1, 2, 3, -1, -1, -1}, 0);
  check_close(where(u8({0, 1, 0}, {3}), a, f64({7, 8, 9}, {3})), {7, 2, 9, 7, 5, 9}, 0);
  Tensor wi = where(u8({1, 0}, {2}), Tensor::from_i64({5, 6}, {2}), Tensor::from_i64({-5, -6}, {2}));
  CHECK(wi.dtype() == DType::i64);
  CHECK(wi.to_i64_vector() == std::vector<int64_t>{5, -6});
  check_close(masked_fill(a, u8({0, 1, 1}, {3}), -100), {1, -100, -100, 4, -100, -100}, 0);
  auto v = masked_fill(a.to(DType::f32), u8({1, 0}, {2, 1}), -INFINITY).to_vector();
  CHECK(std::isinf(v[0]));
  CHECK(v[0] < 0);
  CHECK(v[3] == 4.0);
  // gradients: where routes g to a where mask, else to b (summed over broadcast dims)
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  Tensor y = f64({0, 0, 0}, {3}).requires_grad_();
  sum(where(u8({1, 0, 1}, {3}), x, y)).backward();
  check_close(x.grad(), {1, 0, 1, 1, 0, 1}, 0);
  check_close(y.grad(), {0, 2, 0}, 0);
}

TEST_CASE("index_select and gather values") {
  Tensor a = f64({0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}, {3, 4});
  Tensor rows = index_select(a, 0, Tensor::from_i64({2, 0, 2}, {3}));
  CHECK(rows.shape() == Shape{3, 4});
  check_close(rows, {20, 21, 22, 23, 0, 1, 2, 3, 20, 21, 22, 23}, 0);
  check_close(index_select(a, -1, Tensor::from_i64({3, 1}, {2})), {3, 1, 13, 11, 23, 21}, 0);
  check_close(index_select(a.transpose(0, 1), 1, Tensor::from_i64({1}, {1})), {10, 11, 12, 13}, 0);
  CHECK(index_select(Tensor::from_i64({7, 8, 9}, {3}), 0, Tensor::from_i64({2, 2}, {2})).to_i64_vector() ==
        std::vector<int64_t>{9, 9});
  // torch.gather docs example
  Tensor t = f64({1, 2, 3, 4}, {2, 2});
  check_close(gather(t, 1, Tensor::from_i64({0, 0, 1, 0}, {2, 2})), {1, 1, 4, 3}, 0);
  check_close(gather(t, 0, Tensor::from_i64({0, 1, 1, 0}, {2, 2})), {1, 4, 3, 2}, 0);
  // index smaller than the input in the other dims; picks one class per row like a loss does
  Tensor picked = gather(a, 1, Tensor::from_i64({3, 0}, {2, 1}));
  CHECK(picked.shape() == Shape{2, 1});
  check_close(picked, {3, 10}, 0);
  check_close(gather(a.transpose(0, 1), 0, Tensor::from_i64({2, 1, 0}, {1, 3})), {2, 11, 20}, 0);
}

TEST_CASE("index_select and gather gradients accumulate repeated indices") {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  sum(index_select(a, 0, Tensor::from_i64({2, 0, 2}, {3}))).backward();
  check_close(a.grad(), {1, 1, 0, 0, 2, 2}, 0);
  Tensor b = f64({1, 2, 3, 4}, {2, 2}).requires_grad_();
  sum(gather(b, 1, Tensor::from_i64({1, 1, 1, 0, 0, 0}, {2, 3}))).backward();
  check_close(b.grad(), {0, 3, 3, 0}, 0);
}

TEST_CASE("index_select and gather gradients in bf16 accumulate in f32") {
  // 300 ones summed one by one in bf16 would stall at 256 (256 + 1 rounds back to 256)
  Tensor a = Tensor::ones({2}, DType::bf16).requires_grad_();
  sum(index_select(a, 0, Tensor::from_i64(std::vector<int64_t>(300, 1), {300}))).backward();
  check_close(a.grad(), {0, 300}, 0);
  Tensor b = Tensor::ones({1, 2}, DType::bf16).requires_grad_();
  sum(gather(b, 1, Tensor::from_i64(std::vector<int64_t>(300, 0), {1, 300}))).backward();
  check_close(b.grad(), {300, 0}, 0);
}

namespace {
using V = std::vector<Tensor>;
// Deterministic integers in [0, bound) with many repeats, as an i64 tensor of `shape` on `d`.
Tensor pattern_index(const Shape& shape, int64_t bound, Device d) {
  std::vector<int64_t> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = int64_t((i * 7 + 3) % size_t(bound));
  return Tensor::from_i64(v, shape).to(d);
}
// A u8 mask of `shape` (two of every three elements set) on `d`.
Tensor pattern_mask(const Shape& shape, Device d) {
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = i % 3 != 0;
  return Tensor::from_vector(v, shape, DType::u8, d);
}
test::OpCase select_case(std::string name, std::string op, test::OpFn fn, std::vector<Shape> shapes,
                         std::vector<std::vector<Shape>> gpu = {}) {
  test::OpCase c;
  c.name = std::move(name), c.op = std::move(op), c.fn = std::move(fn), c.shapes = std::move(shapes);
  c.gpu_shapes = std::move(gpu);
  return c;
}
test::OpCase mask_case(std::string name, std::string op, test::OpFn fn) {
  test::OpCase c = select_case(std::move(name), std::move(op), std::move(fn), {{7, 3}}, {{{1}}, {{7, 3}}, {{33, 65}}});
  c.gradients = false;  // u8 results
  c.bf16 = false;       // rounding to bf16 moves values across the threshold
  return c;
}
// index_select along `dim` with 3 * size + 1 indices (repeats, so the backward accumulates).
test::OpCase index_select_case(int64_t dim) {
  return select_case("index_select dim " + std::to_string(dim), "index_select",
                     [dim](const V& in) {
                       const int64_t n = in[0].size(dim);
                       return index_select(in[0], dim, pattern_index({3 * n + 1}, n, in[0].device()));
                     },
                     {{3, 5, 3}}, {{{7, 7, 7}}});
}
// gather along dim 1 with an index one column wider than... or narrower than the input.
test::OpCase gather_case(std::string name, int64_t dim, int64_t index_size) {
  return select_case(std::move(name), "gather",
                     [dim, index_size](const V& in) {
                       Shape s = in[0].shape();
                       const int64_t bound = s[size_t(dim)];
                       s[size_t(dim)] = index_size;
                       return gather(in[0], dim, pattern_index(s, bound, in[0].device()));
                     },
                     {{3, 5}}, {{{5, 257, 3}}, {{11, 5}}});
}
std::vector<test::OpCase> select_cases() {
  std::vector<test::OpCase> cases = {
      mask_case("gt 0.25", "gt", [](const V& in) { return gt(in[0], 0.25); }),
      mask_case("eq against a clamped copy", "eq", [](const V& in) { return eq(in[0], clamp(in[0], -0.3, 0.3)); }),
      select_case("where, broadcast b", "where",
                  [](const V& in) { return where(pattern_mask(in[0].shape(), in[0].device()), in[0], in[1]); },
                  {{3, 5}, {5}}, {{{1}, {1}}, {{7, 3}, {3}}, {{33, 65}, {65}}}),
      select_case("masked_fill, broadcast mask", "masked_fill",
                  [](const V& in) { return masked_fill(in[0], pattern_mask({in[0].size(-1)}, in[0].device()), -3.5); },
                  {{3, 5}}, {{{1}}, {{7, 3}}, {{33, 65}}}),
      index_select_case(0),
      index_select_case(1),
      index_select_case(2),
      gather_case("gather dim 1, index wider than the input", 1, 7),
      gather_case("gather dim 0, index narrower", 0, 2),
  };
  test::OpCase strided = select_case("index_select with a strided index", "index_select", [](const V& in) {
    Tensor idx = Tensor::from_i64({2, 0, 2, 2, 0, 1, 2, 1, 0}, {3, 3}).to(in[0].device()).select(1, 2);  // [2, 1, 0]
    return index_select(in[0], 0, idx);
  }, {{3, 5, 3}});
  cases.push_back(strided);
  return cases;
}
const test::OpCases kSelectCases("select", select_cases());
}  // namespace

TEST_CASE("gradcheck: where, masked_fill, index_select, gather") { test::check_gradients(kSelectCases); }
TEST_CASE("op cases: selection in bf16 and on transposed inputs") {
  test::check_bf16(kSelectCases);
  test::check_transposed(kSelectCases);
}

TEST_CASE("selection errors name the op and the operands") {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK_THROWS_WITH_AS(eq(Tensor::from_i64({1, 2, 3}, {3}), Tensor::ones({3})),
                       doctest::Contains("eq: dtype mismatch, first operand i64[3] on cpu vs second operand f32[3]"),
                       Error);
  CHECK_THROWS_WITH_AS(where(Tensor::ones({3}), a, a), doctest::Contains("where: the mask must be u8"), Error);
  CHECK_THROWS_WITH_AS(where(u8({1, 0, 1}, {3}), a, Tensor::ones({3})),
                       doctest::Contains("where: dtype mismatch, a f64[2, 3] on cpu vs b f32[3] on cpu"), Error);
  CHECK_THROWS_WITH_AS(where(u8({1, 0}, {2}), a, a), doctest::Contains("where: shapes mask [2], a [2, 3] and b [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(masked_fill(a, u8({1, 0}, {2}), 0), doctest::Contains("masked_fill: mask [2] does not broadcast"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 1, Tensor::from_i64({3}, {1})),
                       doctest::Contains("index_select: index 3 is out of range for a dim of size 3"), Error);
  CHECK_THROWS_WITH_AS(index_select(a, 0, Tensor::from_i64({-1}, {1})), doctest::Contains("index -1 is out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 0, Tensor::ones({1})), doctest::Contains("index_select: the index must be i64"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 2, Tensor::from_i64({0}, {1})), doctest::Contains("index_select: dim 2 out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(gather(a, 1, Tensor::from_i64({0, 5}, {1, 2})),
                       doctest::Contains("gather: index 5 is out of range for a dim of size 3"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 1, Tensor::from_i64({0}, {1})), doctest::Contains("must have as many dims"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 1, Tensor::from_i64({0, 0, 0}, {3, 1})),
                       doctest::Contains("gather: index [3, 1] is larger than the input [2, 3] in dim 0"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: gt, eq, where, masked_fill, index_select, gather") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kSelectCases);
  // Integers compare exactly on both devices.
  const Device gpu = Device::cuda();
  Tensor p = Tensor::from_i64({3, 1, 2, 0, 9, 9, 4}, {7}), l = Tensor::from_i64({3, 0, 2, 0, 9, 8, 4}, {7});
  CHECK(eq(p.to(gpu), l.to(gpu)).to(Device::cpu()).to_vector() == eq(p, l).to_vector());
  CHECK(gt(p.to(gpu), 2.0).to(Device::cpu()).to_vector() == gt(p, 2.0).to_vector());
  Tensor ii = Tensor::from_i64({4, 0, 4}, {3});
  Tensor src = Tensor::from_i64({10, 11, 12, 13, 14}, {5});
  CHECK(index_select(src.to(gpu), 0, ii.to(gpu)).to_i64_vector() == std::vector<int64_t>{14, 10, 14});
}

TEST_CASE("cuda: an out-of-range index is an error naming it, and the GPU stays usable") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  Tensor a = random_tensor({4, 6}, 41).to(gpu);
  // Each bad index is raised at the next read by the host, with the CPU's wording.
  CHECK_THROWS_WITH_AS(index_select(a, 1, Tensor::from_i64({2, 9}, {2}).to(gpu)).to_vector(),
                       doctest::Contains("index_select: index 9 is out of range for a dim of size 6"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 0, Tensor::from_i64({0, -3}, {1, 2}).to(gpu)).to_vector(),
                       doctest::Contains("gather: index -3 is out of range for a dim of size 4"), Error);
  Tensor leaf = a.detach().requires_grad_(true);
  Tensor picked = index_select(leaf, 0, Tensor::from_i64({1, 3}, {2}).to(gpu));
  sum(picked).backward();
  std::vector<double> expected(24, 0.0);
  for (int64_t row : {1, 3})
    for (int64_t c = 0; c < 6; ++c) expected[size_t(row * 6 + c)] = 1.0;
  CHECK(leaf.grad().to(Device::cpu()).to_vector() == expected);
  // Afterwards the context still computes: a good selection gives the CPU's values.
  Tensor idx = Tensor::from_i64({5, 0, 5}, {3});
  CHECK(index_select(a, 1, idx.to(gpu)).to(Device::cpu()).to_vector() ==
        index_select(a.to(Device::cpu()), 1, idx).to_vector());
}
}
