// Shape ops concat, stack, split, chunk, pad: values, shapes and errors; gradients, bf16,
// transposed inputs and CUDA parity (through the strided-copy kernels) by the op cases.
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;

TEST_CASE("concat and stack: values and shapes") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector({5, 6}, {2, 1});
  Tensor c = concat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 3});
  check_close(c, {1, 2, 5, 3, 4, 6});
  check_close(concat({a, b.transpose(0, 1)}, 0), {1, 2, 3, 4, 5, 6});
  check_close(concat({a, b}, -1), {1, 2, 5, 3, 4, 6});
  check_close(concat({a, Tensor::ones({2, 0})}, 1), {1, 2, 3, 4});
  Tensor u = Tensor::from_vector({1, 2}, {2}), v = Tensor::from_vector({3, 4}, {2});
  CHECK(stack({u, v}, 0).shape() == Shape{2, 2});
  check_close(stack({u, v}, 0), {1, 2, 3, 4});
  check_close(stack({u, v}, 1), {1, 3, 2, 4});
  check_close(stack({u, v}, -1), {1, 3, 2, 4});
  CHECK_THROWS_WITH_AS(concat({}, 0), doctest::Contains("concat: no tensors"), Error);
  CHECK_THROWS_WITH_AS(concat({a, Tensor::ones({3, 1})}, 1),
                       doctest::Contains("concat: input 1 has shape [3, 1] but input 0 has [2, 2]; only dim 1"), Error);
  CHECK_THROWS_WITH_AS(concat({a, Tensor::ones({2, 1}, DType::f64)}, 1), doctest::Contains("dtype and device"), Error);
  CHECK_THROWS_WITH_AS(stack({u, Tensor::ones({3})}, 0), doctest::Contains("stack: input 1 has shape [3]"), Error);
  CHECK_THROWS_WITH_AS(stack({u, v}, 2), doctest::Contains("stack: dim 2 out of range"), Error);
}

TEST_CASE("split and chunk: views of the right sizes") {
  Tensor x = Tensor::from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {5, 2});
  auto parts = split(x, {2, 3}, 0);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].shape() == Shape{3, 2});
  check_close(parts[0], {0, 1, 2, 3});
  check_close(parts[1], {4, 5, 6, 7, 8, 9});
  CHECK(parts[1].storage() == x.storage());
  auto cols = split(x, {1, 1}, -1);
  check_close(cols[1], {1, 3, 5, 7, 9});
  auto ch = chunk(x, 2, 0);  // ceil(5 / 2) = 3: sizes 3, 2
  REQUIRE(ch.size() == 2);
  CHECK(ch[0].shape() == Shape{3, 2});
  CHECK(ch[1].shape() == Shape{2, 2});
  auto ch6 = chunk(Tensor::arange(6, DType::f32), 4, 0);  // like torch: 3 chunks of 2
  REQUIRE(ch6.size() == 3);
  check_close(ch6[2], {4, 5});
  CHECK_THROWS_WITH_AS(split(x, {2, 2}, 0), doctest::Contains("split: sizes add up to 4 but dim 0"), Error);
  CHECK_THROWS_WITH_AS(chunk(x, 0, 0), doctest::Contains("chunks must be positive"), Error);
}

TEST_CASE("pad: PyTorch order, constant value, cropping") {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor p = pad(x, {1, 2}, 9);
  CHECK(p.shape() == Shape{2, 6});
  check_close(p, {9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9});
  Tensor q = pad(x, {1, 0, 0, 1});  // last dim: left 1; dim 0: bottom 1
  CHECK(q.shape() == Shape{3, 4});
  check_close(q, {0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0});
  check_close(pad(x, {-1, 1}), {2, 3, 0, 5, 6, 0});
  CHECK_THROWS_WITH_AS(pad(x, {1}), doctest::Contains("pad: 1 pad values"), Error);
  CHECK_THROWS_WITH_AS(pad(x, {1, 1, 1, 1, 1, 1}), doctest::Contains("at most 2 trailing dims"), Error);
  CHECK_THROWS_WITH_AS(pad(x, {-2, -2}), doctest::Contains("negative size"), Error);
}

namespace {
using V = std::vector<Tensor>;
test::OpCase shape_case(std::string name, std::string op, test::OpFn fn, std::vector<Shape> shapes,
                        std::vector<std::vector<Shape>> gpu = {}) {
  test::OpCase c;
  c.name = std::move(name), c.op = std::move(op), c.fn = std::move(fn), c.shapes = std::move(shapes);
  c.gpu_shapes = std::move(gpu);
  return c;
}
const test::OpCases kShapeCases(
    "shape",
    {shape_case("concat of three along dim 1", "concat", [](const V& in) { return concat(in, 1); },
                {{3, 5}, {3, 2}, {3, 1}}, {{{3, 5, 7}, {3, 2, 7}, {3, 1, 7}}}),
     shape_case("concat of a tensor with itself", "concat", [](const V& in) { return concat({in[0], in[0]}, 0); },
                {{3, 5}}),
     shape_case("stack along dim 1", "stack", [](const V& in) { return stack(in, 1); }, {{3, 5}, {3, 5}},
                {{{3, 5, 7}, {3, 5, 7}}}),
     shape_case("split, second part", "split", [](const V& in) { return split(in[0], {2, 5}, 0)[1]; }, {{7, 3}},
                {{{7, 5, 7}}}),
     shape_case("chunk, parts reassembled", "chunk",
                [](const V& in) {
                  auto parts = chunk(in[0], 3, 0);
                  return concat({mul(parts[2], 3.0), parts[0]}, 0);
                },
                {{7, 3}}),
     shape_case("pad with a value", "pad", [](const V& in) { return pad(in[0], {1, 2, 0, 1}, 0.5); }, {{7, 3}},
                {{{3, 5, 7}}}),
     shape_case("pad that crops", "pad", [](const V& in) { return pad(in[0], {-1, 2, 1, -2}); }, {{7, 3}},
                {{{3, 5, 7}}})});
}  // namespace

TEST_CASE("gradcheck: concat, stack, split, chunk, pad") { test::check_gradients(kShapeCases); }
TEST_CASE("op cases: shape ops in bf16 and on transposed inputs") {
  test::check_bf16(kShapeCases);
  test::check_transposed(kShapeCases);
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: concat, stack, split, chunk, pad") {
    RETORT_REQUIRE_GPU();
    test::check_cuda_parity(kShapeCases);
  }
}
