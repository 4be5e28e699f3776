// GPU-only checks of the step's CUDA modes (docs/gpu_step.md), against CPU references: TF32
// matrix products and convolutions within TF32 rounding of the f32 CPU result; and a KD step
// replayed as a CUDA graph giving the eager steps' losses. Both skip, saying so, without a GPU.
#include <doctest/doctest.h>
#include <cmath>
#include "engine/autocast.h"
#include "engine/ops.h"
#include "helpers.h"
#include "recipe_test_util.h"
#include "train/bench_stage.h"
#include "train/recipe.h"

using namespace retort;

TEST_SUITE("gpu") {
TEST_CASE("cuda: TF32 matmul and conv2d stay within TF32 rounding of the f32 CPU result") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  const Tensor a = test::random_tensor({64, 256}, 1, -1, 1, DType::f32);
  const Tensor b = test::random_tensor({256, 96}, 2, -1, 1, DType::f32);
  const Tensor x = test::random_tensor({4, 16, 12, 12}, 3, -1, 1, DType::f32);
  const Tensor w = test::random_tensor({32, 16, 3, 3}, 4, -1, 1, DType::f32);
  Tensor mm, conv;
  {
    AutocastScope tf32(Precision::tf32);
    mm = matmul(a.to(gpu), b.to(gpu)).to(Device::cpu());
    conv = conv2d(x.to(gpu), w.to(gpu)).to(Device::cpu());
  }
  // TF32 keeps 10 mantissa bits per operand (relative rounding 2^-11); sums of 256 (144) products
  // of values in [-1, 1] stay within a few 1e-3 of the f32 result relative to a unit floor.
  CHECK(test::max_rel_error(mm, matmul(a, b)) < 1e-2);
  CHECK(test::max_rel_error(conv, conv2d(x, w)) < 1e-2);
}

TEST_CASE("cuda graph: a KD step replayed as a graph gives the eager steps' losses") {
  RETORT_REQUIRE_GPU();
  const Recipe recipe = parse_recipe(
      test::tiny_kd_recipe(R"({ name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 })"),
      "graph.toml");
  BenchStageOptions eager_options, graph_options;
  eager_options.device = graph_options.device = "cuda";
  graph_options.cuda_graph = true;
  BenchStage eager(recipe, eager_options), graph(recipe, graph_options);
  for (int step = 0; step < 6; ++step) {
    eager.step();
    graph.step();
    const double le = eager.read_loss(), lg = graph.read_loss();
    INFO("step " << step << ": eager " << le << ", graph " << lg);
    CHECK(std::abs(le - lg) <= 1e-5 * (1.0 + std::abs(le)));
  }
  CHECK(graph.graph_status() == "on");
}
}
