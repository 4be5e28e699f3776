// Sums over leading dims on the CPU (cpu::sum_cols): a contiguous input is summed by columns where
// it lies, and must give bit for bit what the transposing path gave (a row sum of the transposed
// copy, same pairwise order), so training runs keep their digits. Plus which inputs take that path.
// (Their CUDA parity is among the reduce op cases, test_reduce.cpp.)
#include "engine/ops/reduce_util.h"
#include "helpers.h"
#include "kernels/reduce.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;
using retort::test::same_bits;

TEST_CASE("sum over dim 0: hand-computed columns") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  check_close(sum(a, {0}), {9, 12});
  check_close(mean(a, {0}), {3, 4});
  CHECK(sum(a, {0}, true).shape() == Shape{1, 2});
}

TEST_CASE("sum_cols: the bits of reduce_rows on the transpose, every tile and pairwise split") {
  // Row counts around the 64-row leaves and their halvings; column counts around the 16-wide tiles.
  for (int64_t rows : {1, 2, 63, 64, 65, 129, 1000, 3001})
    for (int64_t cols : {1, 7, 16, 17, 40}) {
      for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO("rows ", rows, ", cols ", cols, ", ", dtype_name(dt));
        Tensor x = random_tensor({rows, cols}, uint64_t(rows * 100 + cols), -3.0, 5.0, dt);
        Tensor xt = x.transpose(0, 1).contiguous();
        Tensor got = Tensor::empty({cols}, dt), want = Tensor::empty({cols}, dt);
        cpu::sum_cols(dt, x.raw_data(), got.raw_data(), rows, cols);
        cpu::reduce_rows(ReduceOp::sum, dt, xt.raw_data(), want.raw_data(), cols, rows);
        CHECK(same_bits(got, want));
      }
    }
}

TEST_CASE("sum and mean over leading dims: same bits as over the transposed copy") {
  Tensor x = random_tensor({2176, 192}, 31, -1.0, 1.0, DType::f32);  // a ViT linear's [B*T, C]
  CHECK(same_bits(sum(x, {0}), sum(x.transpose(0, 1).contiguous(), {1})));
  CHECK(same_bits(mean(x, {0}), mean(x.transpose(0, 1).contiguous(), {1})));
  Tensor y = random_tensor({5, 70, 19}, 32, -2.0, 2.0, DType::f64);
  Tensor y_moved = y.permute({2, 0, 1}).contiguous();  // kept dim first, reduced dims last
  CHECK(same_bits(sum(y, {0, 1}), sum(y_moved, {1, 2})));
  CHECK(same_bits(sum(y, {1, 0}, true).reshape({19}), sum(y_moved, {1, 2})));
  CHECK(sum(y, {0, 1}, true).shape() == Shape{1, 1, 19});
}

TEST_CASE("plan_reduction: which sums take the column path") {
  Tensor x = random_tensor({6, 4, 3}, 33);
  CHECK(plan_reduction(x, {0}, false, "sum", true).columns);
  CHECK(plan_reduction(x, {0, 1}, false, "sum", true).columns);
  CHECK_FALSE(plan_reduction(x, {0}, false, "max").columns);            // only where asked for
  CHECK_FALSE(plan_reduction(x, {1}, false, "sum", true).columns);      // a middle dim: rows
  CHECK_FALSE(plan_reduction(x, {0, 2}, false, "sum", true).columns);   // not a leading block
  CHECK_FALSE(plan_reduction(x, {2}, false, "sum", true).columns);      // already rows, no copy
  CHECK_FALSE(plan_reduction(x, {}, false, "sum", true).columns);       // every dim
  CHECK_FALSE(plan_reduction(x.transpose(0, 2), {0}, false, "sum", true).columns);  // not contiguous
  // A non-contiguous input still sums correctly (through the transposed copy).
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  check_close(sum(a.transpose(0, 1), {0}), {6, 15});
}
