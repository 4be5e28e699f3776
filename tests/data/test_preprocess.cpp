// Preprocessing: parity with torchvision's Resize + CenterCrop on PIL images (the fixture
// written by bench/torch_reference/make_preprocess_fixture.py), hand-computed resizes, the
// shorter-side and centre-crop arithmetic, the float batch transform, and the errors.
#include <cmath>
#include <map>
#include <sstream>
#include "data_test_util.h"
#include "engine/data/preprocess.h"
#include "engine/io/safetensors.h"

using namespace retort;
using namespace retort::data;

namespace {

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const uint8_t* p = t.data<uint8_t>();
  return std::vector<uint8_t>(p, p + t.numel());
}

// "image=rgb_37x29 interpolation=bicubic resize_shorter=16 height=14 width=14" -> its fields.
std::map<std::string, std::string> parse_case(const std::string& line) {
  std::map<std::string, std::string> fields;
  std::istringstream in(line);
  std::string item;
  while (in >> item) {
    const size_t eq = item.find('=');
    REQUIRE(eq != std::string::npos);
    fields[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return fields;
}

struct FixtureCase {
  std::string name;
  Tensor image, want;
  Preprocess p;
};

std::vector<FixtureCase> fixture_cases() {
  const auto path = test::source_path("tests/fixtures/preprocess/pil_resize.safetensors").string();
  const SafetensorsContents f = read_safetensors(path);
  std::vector<FixtureCase> cases;
  for (const auto& [name, tensor] : f.tensors) {
    if (name.rfind("out.", 0) != 0) continue;
    auto fields = parse_case(f.metadata.at(name));
    FixtureCase c{name, f.at("image." + fields.at("image")), tensor, {}};
    c.p = {c.image.size(0), std::stoll(fields.at("height")), std::stoll(fields.at("width")),
           std::stoll(fields.at("resize_shorter")), parse_interpolation(fields.at("interpolation"))};
    cases.push_back(std::move(c));
  }
  return cases;
}

Batch float_batch(const std::vector<float>& pixels, int64_t c, int64_t h, int64_t w) {
  Batch b;
  b.batch = 1, b.channels = c, b.height = h, b.width = w;
  b.images = pixels;
  b.labels = {0};
  return b;
}

}  // namespace

TEST_CASE("preprocess: bit-exact with torchvision Resize + CenterCrop on PIL images") {
  // Pillow resamples u8 images in fixed point (weights rounded to 22 fraction bits, a rounded
  // u8 image between the horizontal and vertical passes); preprocess_image does the same
  // arithmetic, so no tolerance is needed: every pixel of every case must match exactly.
  const auto cases = fixture_cases();
  CHECK(cases.size() == 27);  // 9 geometries x nearest, bilinear, bicubic
  for (const auto& c : cases) {
    INFO(c.name << ": " << c.p.describe());
    REQUIRE(c.want.shape() == Shape{c.p.channels, c.p.height, c.p.width});
    const std::vector<uint8_t> in = bytes_of(c.image), want = bytes_of(c.want);
    std::vector<uint8_t> got(want.size());
    preprocess_image(in.data(), c.image.size(1), c.image.size(2), c.p, got.data());
    int worst = 0;
    for (size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::abs(int(got[k]) - int(want[k])));
    CHECK(worst == 0);
  }
}

TEST_CASE("preprocess: the float batch transform is PIL's resize without the u8 rounding and clipping") {
  // The float path computes the same weighted sums in double but rounds and clamps nothing,
  // neither between the passes nor at the end. Against Pillow's u8 output (clamped to [0, 255]
  // here): nearest moves no value, so it is exact; bilinear differs by the two roundings only
  // (measured max 0.97). Bicubic overshoots at hard edges in the first pass; Pillow clips that
  // to [0, 255] before the second pass spreads it, retort's float path does not, so next to
  // the fixture's 0 / 255 edges they differ by up to 17 (7% of pixels; a NumPy model of the
  // float path with that clip added agrees with Pillow to < 1). On the smooth plane (the RGB
  // image's red ramp) nothing clips and bicubic agrees to the roundings as well.
  std::map<Interpolation, double> worst;
  double smooth_bicubic = 0;
  int64_t overshoots = 0;
  for (const auto& c : fixture_cases()) {
    INFO(c.name << ": " << c.p.describe());
    const std::vector<uint8_t> in = bytes_of(c.image), want = bytes_of(c.want);
    Batch b = float_batch(std::vector<float>(in.begin(), in.end()), c.image.size(0), c.image.size(1), c.image.size(2));
    Generator gen(1);
    preprocess_transform(c.p).apply(b, gen);
    REQUIRE(b.shape() == Shape{1, c.p.channels, c.p.height, c.p.width});
    const size_t plane = size_t(c.p.height * c.p.width);
    for (size_t k = 0; k < want.size(); ++k) {
      const float v = b.images[k];
      overshoots += v < 0.0f || v > 255.0f;
      const double diff = std::abs(double(std::clamp(v, 0.0f, 255.0f)) - double(want[k]));
      worst[c.p.interpolation] = std::max(worst[c.p.interpolation], diff);
      if (c.p.interpolation == Interpolation::bicubic && c.p.channels == 3 && k < plane)
        smooth_bicubic = std::max(smooth_bicubic, diff);
    }
  }
  MESSAGE("float path vs Pillow, max |diff|: nearest " << worst[Interpolation::nearest] << ", bilinear "
          << worst[Interpolation::bilinear] << ", bicubic " << worst[Interpolation::bicubic] << " (smooth plane "
          << smooth_bicubic << ")");
  CHECK(worst[Interpolation::nearest] == 0.0);
  CHECK(worst[Interpolation::bilinear] < 1.0);
  CHECK(smooth_bicubic < 1.0);
  CHECK(worst[Interpolation::bicubic] > 1.0);  // Pillow's clip between the passes, absent in float
  CHECK(overshoots > 0);                       // bicubic rings past 0 / 255: kept in float, clipped in u8
}

TEST_CASE("preprocess: nearest by hand (2x2 -> 4x4 repeats pixels, 4x4 -> 2x2 takes the odd ones)") {
  const std::vector<uint8_t> small = {10, 20, 30, 40};
  std::vector<uint8_t> big(16);
  preprocess_image(small.data(), 2, 2, {1, 4, 4, 0, Interpolation::nearest}, big.data());
  CHECK(big == std::vector<uint8_t>{10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 40, 40, 30, 30, 40, 40});
  // Shrinking by 2: output i samples input position 2 i + 1 (Pillow's scale / 2 start).
  std::vector<uint8_t> grid(16), out(4);
  for (int k = 0; k < 16; ++k) grid[size_t(k)] = uint8_t(k);
  preprocess_image(grid.data(), 4, 4, {1, 2, 2, 0, Interpolation::nearest}, out.data());
  CHECK(out == std::vector<uint8_t>{5, 7, 13, 15});
  // Enlarging 3 -> 7: positions 3/14, 9/14, 15/14, ... rounded down.
  CHECK(nearest_indices(3, 7) == std::vector<int64_t>{0, 0, 1, 1, 1, 2, 2});
}

TEST_CASE("preprocess: bilinear by hand (2x2 -> 4x4 interpolates, 4x4 -> 2x2 is antialiased)") {
  // Enlarging [a, b] to 4 samples: centres 0.25, 0.75, 1.25, 1.75 -> a, .75a + .25b, .25a + .75b, b
  // (taps beyond the edge are dropped and the rest renormalised).
  // Rows: [0, 200] -> [0, 50, 150, 200] and [40, 120] -> [40, 60, 100, 120]; then columns.
  const std::vector<uint8_t> small = {0, 200, 40, 120};
  std::vector<uint8_t> big(16);
  preprocess_image(small.data(), 2, 2, {1, 4, 4, 0, Interpolation::bilinear}, big.data());
  // Row 1 = .75 row 0 + .25 row 3 = [10, 52.5, 137.5, 180]: Pillow rounds halves up.
  CHECK(big == std::vector<uint8_t>{0, 50, 150, 200, 10, 53, 138, 180, 30, 58, 113, 140, 40, 60, 100, 120});
  Batch b = float_batch({0, 200, 40, 120}, 1, 2, 2);
  preprocess(b, {1, 4, 4, 0, Interpolation::bilinear});
  CHECK(b.images[5] == 52.5f);
  CHECK(b.images[6] == 137.5f);

  // Shrinking 4 -> 2 widens the triangle to support 2: output 0 (centre 1) weighs inputs 0, 1, 2
  // by .75, .75, .25 (normalised: 3/7, 3/7, 1/7), output 1 inputs 1, 2, 3 by 1/7, 3/7, 3/7.
  // On img[y][x] = 70 x + 7 y: columns give 50 + 7 y and 160 + 7 y, then rows 55, 66 / 165, 176.
  std::vector<uint8_t> grid(16), out(4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) grid[size_t(y * 4 + x)] = uint8_t(70 * x + 7 * y);
  preprocess_image(grid.data(), 4, 4, {1, 2, 2, 0, Interpolation::bilinear}, out.data());
  CHECK(out == std::vector<uint8_t>{55, 165, 66, 176});
  const AxisTaps taps = filter_taps(4, 2, Interpolation::bilinear);
  CHECK(taps.first == std::vector<int64_t>{0, 1});
  CHECK(taps.count == std::vector<int64_t>{3, 3});
  CHECK(taps.weights[0] == doctest::Approx(3.0 / 7).epsilon(1e-15));
  CHECK(taps.weights[2] == doctest::Approx(1.0 / 7).epsilon(1e-15));
}

TEST_CASE("preprocess: bicubic taps by hand (Keys a = -0.5, negative lobe, widened when shrinking)") {
  // 4 -> 2: support 2 x 2 = 4 around centre 1; inputs 0..3 at distances (j + .5 - 1) / 2 =
  // -.25, .25, .75, 1.25 -> k = .8671875, .8671875, .2265625, -.0703125 (sum 1.890625).
  const AxisTaps taps = filter_taps(4, 2, Interpolation::bicubic);
  REQUIRE(taps.count[0] == 4);
  const double sum = 1.890625;
  CHECK(taps.weights[0] == doctest::Approx(0.8671875 / sum).epsilon(1e-15));
  CHECK(taps.weights[1] == doctest::Approx(0.8671875 / sum).epsilon(1e-15));
  CHECK(taps.weights[2] == doctest::Approx(0.2265625 / sum).epsilon(1e-15));
  CHECK(taps.weights[3] == doctest::Approx(-0.0703125 / sum).epsilon(1e-15));
  // At the same size every filter is one-hot (Keys' kernel is 0 at distances 1 and 2), which
  // is why a same-size resize is a plain copy.
  for (auto interpolation : {Interpolation::bilinear, Interpolation::bicubic}) {
    const AxisTaps same = filter_taps(5, 5, interpolation);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < same.count[size_t(i)]; ++j)
        CHECK(same.weights[size_t(i * same.stride + j)] == (same.first[size_t(i)] + j == i ? 1.0 : 0.0));
  }
  std::vector<uint8_t> grid(12), out(12);
  for (int k = 0; k < 12; ++k) grid[size_t(k)] = uint8_t(k * 21);
  preprocess_image(grid.data(), 3, 4, {1, 3, 4, 0, Interpolation::bicubic}, out.data());
  CHECK(out == grid);
}

TEST_CASE("preprocess: shorter-side sizes and centre-crop offsets as torchvision") {
  CHECK(shorter_side_size(29, 37, 16) == ImageSize{16, 20});     // landscape: 16 * 37 / 29 = 20.4
  CHECK(shorter_side_size(50, 20, 12) == ImageSize{30, 12});     // portrait
  CHECK(shorter_side_size(375, 500, 256) == ImageSize{256, 341});  // 341.33 rounds down
  CHECK(shorter_side_size(500, 333, 256) == ImageSize{384, 256});  // 384.38
  CHECK(shorter_side_size(10, 10, 7) == ImageSize{7, 7});
  // int(round((size - crop) / 2.0)) with Python's round: halves go to the even neighbour.
  CHECK(centre_crop_offset(40, 35) == 2);  // 2.5
  CHECK(centre_crop_offset(51, 36) == 8);  // 7.5
  CHECK(centre_crop_offset(9, 6) == 2);    // 1.5
  CHECK(centre_crop_offset(10, 6) == 2);
  CHECK(centre_crop_offset(7, 7) == 0);
  const ResizeWindow w = preprocess_window(375, 500, {3, 224, 224, 256, Interpolation::bicubic});
  CHECK(w.resized_h == 256);
  CHECK(w.resized_w == 341);
  CHECK(w.top == 16);
  CHECK(w.left == 58);  // (341 - 224) / 2 = 58.5 -> 58
  const ResizeWindow plain = preprocess_window(375, 500, {3, 32, 48, 0, Interpolation::bilinear});
  CHECK(plain.resized_h == 32);
  CHECK(plain.resized_w == 48);
  CHECK(plain.top + plain.left == 0);
}

TEST_CASE("preprocess: describe, interpolation names, channel conversion of float batches") {
  CHECK(Preprocess{3, 32, 32, 36, Interpolation::bicubic}.describe() ==
        "resize shorter side to 36 (bicubic), centre crop 32x32");
  CHECK(Preprocess{1, 32, 32, 0, Interpolation::bilinear}.describe() == "resize to 32x32 (bilinear)");
  for (auto i : {Interpolation::nearest, Interpolation::bilinear, Interpolation::bicubic})
    CHECK(parse_interpolation(to_string(i)) == i);
  CHECK(preprocess_transform({3, 4, 4, 0, Interpolation::nearest}).name == "preprocess(resize to 4x4 (nearest))");

  Batch grey = float_batch({0.25f, 0.5f, 0.75f, 1.0f}, 1, 2, 2);
  preprocess(grey, {3, 2, 2, 0, Interpolation::bilinear});
  CHECK(grey.shape() == Shape{1, 3, 2, 2});
  CHECK(grey.images == std::vector<float>{0.25f, 0.5f, 0.75f, 1.0f, 0.25f, 0.5f, 0.75f, 1.0f, 0.25f, 0.5f, 0.75f, 1.0f});
  Batch rgb = float_batch({100, 100, 50, 50, 200, 200}, 3, 1, 2);
  preprocess(rgb, {1, 1, 2, 0, Interpolation::bilinear});
  CHECK(rgb.shape() == Shape{1, 1, 1, 2});
  CHECK(rgb.images[0] == doctest::Approx(0.299 * 100 + 0.587 * 50 + 0.114 * 200).epsilon(1e-6));
}

TEST_CASE("preprocess: errors name the sizes") {
  CHECK_THROWS_WITH_AS(parse_interpolation("lanczos"),
                       doctest::Contains("unknown interpolation 'lanczos'; expected one of: nearest, bilinear, bicubic"),
                       Error);
  CHECK_THROWS_WITH_AS(Preprocess({2, 8, 8}).validate(), doctest::Contains("channels must be 1 (grey) or 3 (RGB), got 2"),
                       Error);
  CHECK_THROWS_WITH_AS(Preprocess({3, 0, 8}).validate(), doctest::Contains("output size 0x8 must be positive"), Error);
  CHECK_THROWS_WITH_AS(Preprocess({3, 8, 8, -1}).validate(), doctest::Contains("resize_shorter must be >= 0"), Error);
  // A 32x48 crop fits a landscape image resized to shorter side 36, not a portrait one (90x36).
  const Preprocess wide{3, 32, 48, 36, Interpolation::bicubic};
  CHECK(preprocess_window(20, 50, wide).left == 21);
  CHECK_THROWS_WITH_AS(preprocess_window(50, 20, wide, "cat.png"),
                       doctest::Contains("cat.png: a 50x20 image resized to shorter side 36 is 90x36, smaller than the "
                                         "32x48 centre crop"),
                       Error);
  CHECK_THROWS_WITH_AS(centre_crop_offset(4, 5), doctest::Contains("a crop of 5 does not fit in 4"), Error);
  CHECK_THROWS_WITH_AS(shorter_side_size(0, 5, 3), doctest::Contains("cannot resize a 0x5 image"), Error);
  std::vector<uint8_t> out(4);
  CHECK_THROWS_WITH_AS(resample_plane(out.data(), 2, 2, {2, 2, 1, 0, 2, 2}, Interpolation::bilinear, out.data()),
                       doctest::Contains("does not lie inside the 2x2 resized image"), Error);
  Batch two = float_batch(std::vector<float>(8), 2, 2, 2);
  CHECK_THROWS_WITH_AS(preprocess(two, {3, 2, 2}), doctest::Contains("batches of 1 or 3 channels, not 2"), Error);
}
