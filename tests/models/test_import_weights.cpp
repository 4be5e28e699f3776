// Importing weights by name: strict loading reports every missing, unexpected and mismatched
// name in one error (non-strict warns), dtypes are converted, a missing num_batches_tracked
// is tolerated, retort checkpoints give their "model." tensors, ViT pos_embed is resampled
// as timm's resample_abs_pos_embed (bicubic, antialias) on hand-computed cases and on timm's
// own output. (Run-directory model file names: tests/train/test_run_model_files.cpp.)
#include <cmath>
#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "io/temp_dir.h"
#include "models/import_weights.h"
#include "models/registry.h"
#include "models/vit.h"

using namespace retort;
using namespace retort::models;
using retort::test::TempDir;

namespace {
// PyTorch's antialiased bicubic weights, written out by hand (Keys cubic, a = -0.5):
// f(0.25) = 0.8671875, f(0.75) = 0.2265625, f(1.25) = -0.0703125.
// Upsampling 2 -> 4 (scale 0.5, support 2): output 0 has center 0.25 and reads inputs 0, 1 at
// distances 0.25, 1.25; output 1 has center 0.75, distances 0.25, 0.75; outputs 2, 3 mirror.
const std::vector<std::vector<double>> kUp2to4 = {
    {0.8671875 / 0.796875, -0.0703125 / 0.796875},
    {0.8671875 / 1.09375, 0.2265625 / 1.09375},
    {0.2265625 / 1.09375, 0.8671875 / 1.09375},
    {-0.0703125 / 0.796875, 0.8671875 / 0.796875},
};
// Downsampling 4 -> 2 (scale 2, support 4, distances halved): output 0 (center 1) reads
// inputs 0..3 at scaled distances 0.25, 0.25, 0.75, 1.25; output 1 mirrors.
const double kDownTotal = 0.8671875 * 2 + 0.2265625 - 0.0703125;
const std::vector<std::vector<double>> kDown4to2 = {
    {0.8671875 / kDownTotal, 0.8671875 / kDownTotal, 0.2265625 / kDownTotal, -0.0703125 / kDownTotal},
    {-0.0703125 / kDownTotal, 0.2265625 / kDownTotal, 0.8671875 / kDownTotal, 0.8671875 / kDownTotal},
};

// Separable resize of a [h, w] grid with per-axis weight matrices [out][in].
std::vector<double> resize_by_hand(const std::vector<double>& g, int64_t h, int64_t w,
                                   const std::vector<std::vector<double>>& wy, const std::vector<std::vector<double>>& wx) {
  int64_t H = int64_t(wy.size()), W = int64_t(wx.size());
  std::vector<double> out(size_t(H * W), 0.0);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) out[size_t(y * W + x)] += wy[size_t(y)][size_t(i)] * wx[size_t(x)][size_t(j)] * g[size_t(i * w + j)];
  return out;
}

ModelConfig small_vit(int64_t image, int64_t classes = 10) {
  ModelConfig c;
  c.image_size = image;
  c.patch_size = 8;
  c.depth = 1;
  c.num_classes = classes;
  return c;
}

StoredState state_of(const Model& m) {
  StoredState s;
  for (auto& [n, t] : m.state_dict()) {
    s.tensors[n] = t.clone();
    s.stored_dtypes[n] = safetensors_dtype_name(t.dtype());
  }
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a retort::Error");
  return {};
}
}  // namespace

TEST_CASE("import: pos_embed resampling matches timm's bicubic antialias on hand-computed cases") {
  // [1, 1 + 2*2, 2]: class token (7, -7), grid channel 0 = 1, 2, 3, 4, channel 1 = its square.
  std::vector<double> v = {7, -7, 1, 1, 2, 4, 3, 9, 4, 16};
  Tensor pos = Tensor::from_vector(v, {1, 5, 2}, DType::f64);
  Tensor up = resample_pos_embed(pos, 2, 2, 4, 4);
  REQUIRE(up.shape() == Shape{1, 17, 2});
  std::vector<double> got = up.to_vector();
  CHECK(got[0] == 7);
  CHECK(got[1] == -7);  // class token kept as it is
  for (int ch = 0; ch < 2; ++ch) {
    std::vector<double> grid = {v[size_t(2 + ch)], v[size_t(4 + ch)], v[size_t(6 + ch)], v[size_t(8 + ch)]};
    std::vector<double> want = resize_by_hand(grid, 2, 2, kUp2to4, kUp2to4);
    for (size_t i = 0; i < 16; ++i) {
      INFO("channel " << ch << " cell " << i);
      CHECK(got[2 + 2 * i + size_t(ch)] == doctest::Approx(want[i]).epsilon(1e-12));
    }
  }
  // One value written out fully: cell (0, 0) of channel 0 = sum of wy0[i] wx0[j] g[i][j].
  const double a = 0.8671875 / 0.796875, b = -0.0703125 / 0.796875;
  CHECK(got[2] == doctest::Approx(a * a * 1 + a * b * 2 + b * a * 3 + b * b * 4).epsilon(1e-12));

  // 4x4 -> 2x2 (downsampling: the antialias path widens the filter).
  std::vector<double> g16(16);
  for (int i = 0; i < 16; ++i) g16[size_t(i)] = std::sin(0.7 * i) + 0.1 * i;
  std::vector<double> p16 = {0.5};
  p16.insert(p16.end(), g16.begin(), g16.end());
  Tensor down = resample_pos_embed(Tensor::from_vector(p16, {1, 17, 1}, DType::f64), 4, 4, 2, 2);
  std::vector<double> want = resize_by_hand(g16, 4, 4, kDown4to2, kDown4to2);
  std::vector<double> dg = down.to_vector();
  CHECK(dg[0] == 0.5);
  for (size_t i = 0; i < 4; ++i) CHECK(dg[1 + i] == doctest::Approx(want[i]).epsilon(1e-12));

  // The same grid size is the identity; non-square (2x3 -> 3x2) follows each axis separately.
  Tensor same = resample_pos_embed(Tensor::from_vector(p16, {1, 17, 1}, DType::f64), 4, 4, 4, 4);
  CHECK(same.to_vector() == p16);
  CHECK_THROWS_WITH_AS(resample_pos_embed(pos, 3, 3, 4, 4), doctest::Contains("is not [1, 1 + 3x3, D]"), Error);
}

TEST_CASE("import: pos_embed resampling matches timm's own output (fixture written by timm)") {
  // tests/models/fixtures/make_pos_embed_fixture.py: timm's resample_abs_pos_embed (computed in
  // f32 by PyTorch) on random embeddings; retort computes in double.
  const std::string path = retort::test::source_path("tests/models/fixtures/pos_embed_timm.safetensors").string();
  SafetensorsContents f = read_safetensors(path);
  int pairs = 0;
  for (auto [old_side, new_side] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {4, 2}, {14, 8}, {14, 16}, {7, 5}, {3, 7}}) {
    INFO(old_side << " -> " << new_side);
    const Tensor& in = f.at(fmt::format("in_{}_{}", old_side, new_side));
    std::vector<double> want = f.at(fmt::format("out_{}_{}", old_side, new_side)).to_vector();
    std::vector<double> got = resample_pos_embed(in.to(DType::f64), old_side, old_side, new_side, new_side).to_vector();
    REQUIRE(got.size() == want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
    CHECK(worst < 2e-6);  // f32 rounding of PyTorch's kernel
    ++pairs;
  }
  CHECK(pairs == 6);
}

TEST_CASE("import: strict loading lists every missing, unexpected and mismatched name in one error") {
  auto model = create_model("resnet8", {});
  StoredState s = state_of(*model);
  s.tensors.erase("conv1.weight");
  s.tensors.erase("layer1.0.bn1.running_var");
  s.tensors["layer9.extra.weight"] = Tensor::ones({2});
  s.tensors["fc.weight"] = Tensor::ones({1000, 64});
  s.tensors["fc.bias"] = Tensor::ones({1000});
  const std::vector<double> before = model->state_dict()[0].second.to_vector();
  std::string msg = error_of([&] { load_weights(*model, s, "w.safetensors"); });
  INFO(msg);
  for (const char* part : {"w.safetensors", "2 missing", "conv1.weight", "layer1.0.bn1.running_var", "1 unexpected",
                           "layer9.extra.weight", "2 with another shape", "'fc.weight': shape [1000, 64] in the file but [10, 64]",
                           "'fc.bias'", "head = \"reset\"", "--head reset", "strict loading"})
    CHECK(msg.find(part) != std::string::npos);
  CHECK(model->state_dict()[0].second.to_vector() == before);  // nothing modified

  // Non-strict: missing/unexpected become warnings, shape mismatches stay errors.
  ImportOptions loose;
  loose.strict = false;
  CHECK(error_of([&] { load_weights(*model, s, "w.safetensors", loose); }).find("fc.weight") != std::string::npos);
  s.tensors.erase("fc.weight");
  s.tensors.erase("fc.bias");
  ImportReport r = load_weights(*model, s, "w.safetensors", loose);
  CHECK(r.missing == std::vector<std::string>{"conv1.weight", "fc.weight", "fc.bias", "layer1.0.bn1.running_var"});
  CHECK(r.unexpected == std::vector<std::string>{"layer9.extra.weight"});
  std::string lines = fmt::format("{}", fmt::join(r.lines(), "\n"));
  CHECK(lines.find("warning: 4 missing") != std::string::npos);
  CHECK(lines.find("warning: 1 unexpected (ignored): layer9.extra.weight") != std::string::npos);
}

TEST_CASE("import: weights of another architecture say so, not that the classifier needs other classes") {
  auto resnet20 = create_model("resnet20", {});
  StoredState s = state_of(*resnet20);
  s.arch = "resnet20";
  auto wide = create_model("resnet8x4", {});
  std::string msg = error_of([&] { load_weights(*wide, s, "r20.safetensors"); });
  INFO(msg);
  CHECK(msg.find("hint: these weights are of another architecture (the file says 'resnet20')") != std::string::npos);
  CHECK(msg.find("--head reset") == std::string::npos);  // the classifier's outputs agree; its inputs do not
}

TEST_CASE("import: dtypes are converted, num_batches_tracked may be absent, checkpoints give their model tensors") {
  TempDir dir("import_dtypes");
  ModelConfig cfg;
  cfg.seed = 11;
  auto src = create_model("resnet8", cfg);
  // Store as a torchvision-style file: BF16 conv weights, F64 the rest, no num_batches_tracked.
  NamedTensors stored;
  for (auto& [n, t] : src->state_dict()) {
    if (n.find("num_batches_tracked") != std::string::npos) continue;
    stored.emplace_back(n, n.find("conv") != std::string::npos ? t.to(DType::bf16) : t.to(DType::f64));
  }
  write_safetensors(dir.file("w.safetensors"), stored);
  auto dst = create_model("resnet8", {});
  ImportReport r = load_weights_file(*dst, dir.file("w.safetensors"));
  CHECK(r.loaded == int64_t(stored.size()));
  CHECK(r.converted.count("BF16 -> f32"));
  CHECK(r.converted.count("F64 -> f32"));
  CHECK(r.defaulted.size() == 9);  // resnet8: stem BN, 3 blocks x 2 BNs, 2 shortcut BNs
  for (auto& [n, t] : dst->state_dict()) {
    INFO(n);
    CHECK(t.dtype() == src->find_tensor(n)->dtype());
    if (n.find("num_batches_tracked") != std::string::npos) continue;
    Tensor want = n.find("conv") != std::string::npos ? src->find_tensor(n)->to(DType::bf16).to(DType::f32)
                                                      : *src->find_tensor(n);
    CHECK(t.to_vector() == want.to_vector());
  }

  // A retort checkpoint: the "model." tensors, prefix removed; optimizer tensors ignored.
  save_checkpoint(dir.file("ckpt.safetensors"), src->state_dict(), nullptr, TrainingProgress{});
  StoredState s = read_model_state(dir.file("ckpt.safetensors"));
  CHECK(s.from_checkpoint);
  CHECK(s.tensors.size() == src->state_dict().size());
  CHECK(s.tensors.count("conv1.weight"));
  auto again = create_model("resnet8", {});
  load_weights(*again, s, "ckpt");
  CHECK(again->find_tensor("fc.weight")->to_vector() == src->find_tensor("fc.weight")->to_vector());
}

TEST_CASE("import: a ViT's pos_embed is resampled to the model's grid, and import_target reads the file") {
  auto big = create_model("vit_tiny", small_vit(32));  // 4x4 grid
  StoredState s = state_of(*big);
  auto small = create_model("vit_tiny", small_vit(16));  // 2x2 grid
  ImportReport r = load_weights(*small, s, "vit.safetensors");
  CHECK(r.pos_embed_resampled.find("4x4 -> 2x2") != std::string::npos);
  auto* vit = dynamic_cast<VisionTransformer*>(small.get());
  REQUIRE(vit);
  Tensor want = resample_pos_embed(dynamic_cast<VisionTransformer*>(big.get())->pos_embed.to(DType::f64), 4, 4, 2, 2);
  std::vector<double> got = vit->pos_embed.to_vector(), w = want.to_vector();
  REQUIRE(got.size() == w.size());
  for (size_t i = 0; i < w.size(); ++i) CHECK(got[i] == doctest::Approx(w[i]).epsilon(1e-6));
  CHECK(vit->head->weight.to_vector() == dynamic_cast<VisionTransformer*>(big.get())->head->weight.to_vector());
  // Without resampling the pos_embed is a shape mismatch.
  ImportOptions no_resample;
  no_resample.resample_pos_embed = false;
  CHECK(error_of([&] { load_weights(*small, s, "vit.safetensors", no_resample); }).find("'pos_embed': shape [1, 17, 192]") !=
        std::string::npos);

  ImportTarget t = import_target("vit_tiny", s, 0, 0);
  CHECK(t.arch == "vit_tiny");
  CHECK(t.config.patch_size == 8);
  CHECK(t.config.depth == 1);
  CHECK(t.config.image_size == 32);
  CHECK(t.config.num_classes == 10);
  ImportTarget t2 = import_target("vit_tiny_patch8_64", s, 0, 0);
  CHECK(t2.arch == "vit_tiny");
  CHECK(t2.config.image_size == 64);
  CHECK(import_target("vit_tiny", s, 48, 5).config.image_size == 48);
  StoredState headless = s;
  headless.tensors.erase("head.weight");
  CHECK(error_of([&] { import_target("vit_tiny", headless, 0, 0); }).find("--num-classes") != std::string::npos);
  auto r18 = create_model("resnet18", [] { ModelConfig c; c.num_classes = 7; c.in_channels = 1; return c; }());
  ImportTarget tr = import_target("resnet18", state_of(*r18), 0, 0);
  CHECK(tr.config.num_classes == 7);
  CHECK(tr.config.in_channels == 1);
  CHECK(tr.config.image_size == 224);
}

TEST_CASE("import: a distilled ViT's pos_embed is resampled with both prefix tokens kept") {
  // deit_tiny_distilled on 28 px: patch 7 (a 4x4 grid, pos_embed [1, 2 + 16, 192]) loaded into
  // patch 14 (2x2, [1, 2 + 4, 192]) -- the CLS and distillation rows are copied, the grid is
  // resampled as resample_pos_embed does with prefix 2; every other tensor loads as it is.
  ModelConfig small;
  small.in_channels = 1;
  small.image_size = 28;
  small.depth = 1;
  small.seed = 7;
  small.patch_size = 7;
  auto src = create_model("deit_tiny_distilled", small);
  ModelConfig coarse = small;
  coarse.patch_size = 14;
  coarse.seed = 8;
  auto dst = create_model("deit_tiny_distilled", coarse);
  StoredState s = state_of(*src);
  s.tensors.erase("patch_embed.proj.weight");  // its kernel size follows the patch
  ImportOptions loose;
  loose.strict = false;
  ImportReport r = load_weights(*dst, s, "deit.safetensors", loose);
  CHECK(r.pos_embed_resampled.find("class and distillation tokens kept") != std::string::npos);
  const auto* vit = dynamic_cast<const VisionTransformer*>(dst.get());
  const auto* from = dynamic_cast<const VisionTransformer*>(src.get());
  REQUIRE(vit != nullptr);
  REQUIRE(from != nullptr);
  const Tensor want_pos = resample_pos_embed(from->pos_embed.to(DType::f64), 4, 4, 2, 2, 2);
  retort::test::check_close(vit->pos_embed, want_pos.to_vector(), 1e-6);
  retort::test::check_close(vit->pos_embed.slice(1, 0, 2), from->pos_embed.slice(1, 0, 2).to_vector(), 0.0);
  retort::test::check_close(vit->dist_token, from->dist_token.to_vector(), 0.0);
  retort::test::check_close(vit->head_dist->weight, from->head_dist->weight.to_vector(), 0.0);
}
