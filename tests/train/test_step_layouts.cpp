// The stage key memory_format (train/recipe.h): a KD step whose batch is channels-last gives, on
// the CPU, the NCHW step's losses bit for bit (the CPU computes channels-last convolutions,
// BatchNorm and pooling through NCHW, and elementwise ops in memory order), step after step.
#include <doctest/doctest.h>
#include "helpers.h"
#include "recipe_test_util.h"
#include "train/bench_stage.h"
#include "train/recipe.h"

using namespace retort;

TEST_CASE("step layouts: a channels-last KD step equals the NCHW step bit for bit on the CPU") {
  const std::string losses = R"({ name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 })";
  const Recipe nchw = parse_recipe(test::tiny_kd_recipe(losses), "layouts.toml");
  const Recipe nhwc = parse_recipe(test::tiny_kd_recipe(losses, "memory_format = \"channels_last\""), "layouts.toml");
  CHECK(nhwc.stages.back().memory_format == MemoryFormat::channels_last);
  BenchStage a(nchw, {}), b(nhwc, {});
  for (int step = 0; step < 3; ++step) {
    a.step();
    b.step();
    const double la = a.read_loss(), lb = b.read_loss();
    INFO("step " << step << ": " << la << " against " << lb);
    CHECK(la == lb);
  }
  // The same through the bench flag.
  BenchStageOptions flag;
  flag.channels_last = true;
  BenchStage c(nchw, flag);
  c.step();
  CHECK(c.stage().memory_format == MemoryFormat::channels_last);
}
