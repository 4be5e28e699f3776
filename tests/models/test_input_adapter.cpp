// A model fed the data's images at another size and channel count (models/input_adapter.h):
// the resize is the data pipeline's (engine/data/preprocess.h, Pillow's filters) as two matrix
// products, grey is repeated to RGB and RGB mixed to grey by Pillow's weights, a model with an
// adapter equals the model on the adapted batch, and a recipe gives a teacher its own input.
#include <doctest/doctest.h>
#include <filesystem>
#include "engine/data/preprocess.h"
#include "engine/ops.h"
#include "helpers.h"
#include "models/input_adapter.h"
#include "models/registry.h"
#include "tests/train/recipe_test_util.h"
#include "train/recipe.h"
#include "train/runner.h"

using namespace retort;

TEST_CASE("input adapter: the resize is the data pipeline's float resize, for every filter and both directions") {
  for (auto interpolation : {data::Interpolation::nearest, data::Interpolation::bilinear, data::Interpolation::bicubic})
    for (auto [from, to] : {std::pair<int64_t, int64_t>{28, 32}, {32, 20}}) {
      INFO(data::to_string(interpolation) << " " << from << " -> " << to);
      const Tensor x = test::random_tensor({2, 1, from, from}, 5, 0.0, 1.0, DType::f32);
      data::Batch b;
      b.batch = 2, b.channels = 1, b.height = from, b.width = from;
      const std::vector<double> v = x.to_vector();
      b.images.assign(v.begin(), v.end());
      data::Preprocess p;
      p.channels = 1;
      p.height = p.width = to;
      p.interpolation = interpolation;
      data::preprocess(b, p);
      const models::InputAdapter adapter(1, from, 1, to, interpolation);
      const Tensor y = adapter.adapt(x);
      REQUIRE(y.shape() == Shape{2, 1, to, to});
      test::check_close(y, std::vector<double>(b.images.begin(), b.images.end()), 1e-5);
    }
}

TEST_CASE("input adapter: grey is repeated to RGB, RGB mixed to grey; shapes and bad inputs") {
  const Tensor grey = test::random_tensor({1, 1, 4, 4}, 6, 0.0, 1.0, DType::f32);
  const models::InputAdapter to_rgb(1, 4, 3, 4, data::Interpolation::bilinear);
  const Tensor rgb = to_rgb.adapt(grey);
  REQUIRE(rgb.shape() == Shape{1, 3, 4, 4});
  for (int64_t c = 0; c < 3; ++c) CHECK(test::same_bits(rgb.select(1, c), grey.select(1, 0)));
  const models::InputAdapter to_grey(3, 4, 1, 4, data::Interpolation::bilinear);
  const Tensor back = to_grey.adapt(rgb);  // 0.299 + 0.587 + 0.114 = 1
  test::check_close(back, grey.to_vector(), 1e-6);
  CHECK(to_rgb.adapt(Shape{8, 1, 4, 4}) == Shape{8, 3, 4, 4});
  CHECK(to_rgb.describe() == "1x4x4 -> 3x4x4 (grey repeated to RGB)");
  CHECK_THROWS_WITH_AS(to_rgb.adapt(rgb), doctest::Contains("is not [B, 1, 4, 4]"), retort::Error);
  CHECK_THROWS_WITH_AS(models::InputAdapter(2, 4, 3, 4, data::Interpolation::bilinear),
                       doctest::Contains("images of 2 channels cannot feed a model of 3"), retort::Error);
}

TEST_CASE("input adapter: a model with an adapter is the model on the adapted batch, taps included") {
  models::ModelConfig c;
  c.in_channels = 3;
  c.image_size = 32;
  c.patch_size = 8;
  c.depth = 2;
  auto vit = models::create_model("vit_tiny", c);
  vit->eval();
  auto adapter = std::make_shared<models::InputAdapter>(1, 28, 3, 32, data::Interpolation::bicubic);
  const Tensor x = test::random_tensor({2, 1, 28, 28}, 9, -1.0, 1.0, DType::f32);
  const Tensor plain = vit->forward(adapter->adapt(x), nullptr);
  vit->set_input_adapter(adapter);
  models::Taps taps;
  CHECK(test::same_bits(vit->forward(x, &taps), plain));
  CHECK(taps.at("tokens.0").size(1) == 17);  // 4x4 patches + CLS: the model's own grid
  CHECK(vit->tap_info({2, 1, 28, 28}).back().shape == Shape{2, 10});
}

TEST_CASE("input adapter: a recipe's teacher takes its own image size and channels") {
  const std::string recipe = R"(
[run]
name = "adapted"
device = "cpu"
[data]
dataset = "fashion-mnist"
train_subset = 200
interpolation = "bicubic"
workers = 0
[models.teacher]
arch = "resnet8"
in_channels = 3
image_size = 40
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 16
[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 16
losses = [ { name = "kd", teacher = "teacher" } ]
)";
  test::TempDir tmp;
  RunOptions o;
  o.quiet = true;
  o.max_batches_per_epoch = 2;
  o.out_dir = (tmp.path / "run").string();
  run_recipe(parse_recipe(recipe, "adapted.toml"), o);
  const auto meta = read_safetensors((tmp.path / "run" / "models" / "teacher.safetensors").string()).metadata;
  CHECK(meta.at("model.in_channels") == "3");
  CHECK(meta.at("model.image_size") == "40");
  CHECK(meta.at("input.channels") == "1");
  CHECK(meta.at("input.image_size") == "28");
  CHECK(test::weights_of(tmp.path / "run" / "models" / "teacher.safetensors").at("conv1.weight").size() == 16 * 3 * 9);
}
