// Shape adapters: tokens->grid, pooling values, pairing rules and the errors for impossible pairs.
#include "helpers.h"
#include "transfer/adapters.h"

using namespace retort;
using models::TapInfo;

TEST_CASE("adapters: tokens to map drops CLS and fills the grid row-major") {
  // B = 1, 1 + 2*2 tokens, D = 2; token k (k >= 1) holds [10k, 10k + 1].
  Tensor x = Tensor::from_vector({-1, -2, 10, 11, 20, 21, 30, 31, 40, 41}, {1, 5, 2}, DType::f64);
  transfer::TokensToMap t(5, 2);
  Tensor m = t.forward(x);
  CHECK(m.shape() == Shape{1, 2, 2, 2});
  retort::test::check_close(m, {10, 20, 30, 40, 11, 21, 31, 41}, 0);
  CHECK_THROWS_WITH_AS(transfer::TokensToMap(6, 2), doctest::Contains("5 is not a square"), Error);
}

TEST_CASE("adapters: average and max pooling to a smaller map") {
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = i;
  Tensor x = Tensor::from_vector(v, {1, 1, 4, 4}, DType::f64);
  // 2x2 blocks of 0..15 (row-major): means 2.5, 4.5, 10.5, 12.5; maxima 5, 7, 13, 15
  retort::test::check_close(transfer::pool_to(x, 2, 2, transfer::PoolMode::average), {2.5, 4.5, 10.5, 12.5}, 1e-12);
  retort::test::check_close(transfer::pool_to(x, 2, 2, transfer::PoolMode::max), {5, 7, 13, 15}, 0);
  // 4 -> 3 with max: stride 1, window 2 -> overlapping 2x2 windows
  Tensor m3 = transfer::pool_to(x, 3, 3, transfer::PoolMode::max);
  retort::test::check_close(m3, {5, 6, 7, 9, 10, 11, 13, 14, 15}, 0);
  CHECK(transfer::pool_to(x, 4, 4, transfer::PoolMode::max).shape() == Shape{1, 1, 4, 4});
}

TEST_CASE("adapters: pairing maps, tokens and vectors") {
  Generator gen(1);
  // student map larger and narrower in channels: pooled and projected on the student side
  auto a = transfer::make_tap_adapter(TapInfo{"stage1", {2, 8, 8, 8}}, TapInfo{"stage2", {2, 16, 4, 4}}, gen);
  CHECK(a.matched == Shape{2, 16, 4, 4});
  CHECK(a.student->size() == 2);  // pool, projection
  CHECK(a.teacher->size() == 0);
  CHECK(a.student->named_parameters().size() == 3);  // conv.weight, bn.weight, bn.bias
  Tensor y = a.student->forward(retort::test::random_tensor({2, 8, 8, 8}, 3, -1, 1, DType::f32));
  CHECK(y.shape() == Shape{2, 16, 4, 4});

  // teacher map larger: pooled on the teacher side (no parameters there)
  auto b = transfer::make_tap_adapter(TapInfo{"s", {2, 4, 4, 4}}, TapInfo{"t", {2, 4, 8, 8}}, gen);
  CHECK(b.teacher->size() == 1);
  CHECK(b.teacher->named_parameters().empty());
  CHECK(b.teacher->forward(retort::test::random_tensor({2, 4, 8, 8}, 4, -1, 1, DType::f32)).shape() ==
        Shape{2, 4, 4, 4});

  // ViT tokens (1 + 3*3) against a map: tokens become a 3x3 grid
  auto c = transfer::make_tap_adapter(TapInfo{"tokens.0", {2, 10, 12}}, TapInfo{"stage3", {2, 6, 6, 6}}, gen);
  CHECK(c.matched == Shape{2, 6, 3, 3});
  CHECK(c.student->forward(retort::test::random_tensor({2, 10, 12}, 5, -1, 1, DType::f32)).shape() ==
        Shape{2, 6, 3, 3});

  // vectors: linear map
  auto d = transfer::make_tap_adapter(TapInfo{"pooled", {2, 5}}, TapInfo{"cls", {2, 7}}, gen);
  CHECK(d.matched == Shape{2, 7});
  CHECK(d.student->forward(retort::test::random_tensor({2, 5}, 6, -1, 1, DType::f32)).shape() == Shape{2, 7});

  // same channels, no forced projection: nothing learned
  transfer::AdapterOptions o;
  o.always_project = false;
  auto e = transfer::make_tap_adapter(TapInfo{"s", {2, 4, 4, 4}}, TapInfo{"t", {2, 4, 4, 4}}, gen, o);
  CHECK(e.student->size() == 0);
}

TEST_CASE("adapters: impossible pairings fail with a clear message") {
  Generator gen(2);
  CHECK_THROWS_WITH_AS(
      transfer::make_tap_adapter(TapInfo{"pooled", {2, 64}}, TapInfo{"stage2", {2, 32, 7, 7}}, gen),
      doctest::Contains("cannot pair student tap 'pooled' [2, 64] with teacher tap 'stage2' [2, 32, 7, 7]: one is "
                        "a spatial map/token sequence and the other a vector"),
      Error);
  CHECK_THROWS_WITH_AS(
      transfer::make_tap_adapter(TapInfo{"tokens.1", {2, 11, 8}}, TapInfo{"stage2", {2, 32, 7, 7}}, gen),
      doctest::Contains("holds 11 tokens; minus the CLS token that leaves 10, which is not a square"), Error);
  CHECK_THROWS_WITH_AS(transfer::make_tap_adapter(TapInfo{"odd", {2, 3, 4, 5, 6}}, TapInfo{"stage2", {2, 3, 4, 4}}, gen),
                       doctest::Contains("expected a map [B, C, H, W], ViT tokens [B, N, D] or a vector [B, D]"), Error);
  CHECK_THROWS_WITH_AS(transfer::parse_pool_mode("median", "fitnet"), doctest::Contains("\"avg\" or \"max\""), Error);
}
