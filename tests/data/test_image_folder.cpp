// Image folders: PNG/BMP/JPEG files written with stb_image_write load (streamed) with sorted
// classes, channel conversion and bilinear resizing; an unreadable file is named in the error.
#include <cmath>
#include "data_test_util.h"
#include "engine/data/image_decode.h"
#include "engine/data/image_folder.h"
#include "engine/data/image_source.h"
#include "engine/data/registry.h"

#include "stb_image_write_impl.h"

using namespace retort;
using namespace retort::data;
using namespace retort::test;

namespace {
// An RGB image w x h (HWC) with R = x * 16, G = y * 16, B = value.
std::vector<uint8_t> rgb_image(int w, int h, uint8_t value) {
  std::vector<uint8_t> px(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = px.data() + (size_t(y) * size_t(w) + size_t(x)) * 3;
      p[0] = uint8_t(x * 16), p[1] = uint8_t(y * 16), p[2] = value;
    }
  return px;
}
void write_png(const std::string& path, int w, int h, uint8_t value) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  auto px = rgb_image(w, h, value);
  REQUIRE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0);
}
// A folder at channels x height x width (plain bilinear resize), cache of 1 MB.
Dataset load(const std::string& root, int64_t channels, int64_t height, int64_t width) {
  return load_image_folder(root, Preprocess{channels, height, width}, int64_t(1) << 20);
}
std::vector<uint8_t> pixels(const Dataset& ds, int64_t i) {
  std::vector<uint8_t> out(size_t(ds.image_numel()));
  ds.copy_image(i, out.data());
  return out;
}
}  // namespace

TEST_CASE("image folder: sorted classes, native size, CHW layout") {
  TempDir dir("folder");
  write_png(dir.file("zebra/b.png"), 4, 3, 200);
  write_png(dir.file("zebra/a.png"), 4, 3, 100);
  write_png(dir.file("ant/x.png"), 4, 3, 50);
  write_bytes(dir.file("ant/readme.txt"), {1, 2, 3});  // not an image: ignored
  Dataset ds = load(dir.path.string(), 3, 3, 4);
  CHECK(ds.size() == 3);
  CHECK(ds.num_classes == 2);
  CHECK(ds.class_names == std::vector<std::string>{"ant", "zebra"});
  CHECK(ds.labels == std::vector<int64_t>{0, 1, 1});
  // image 1 is zebra/a.png: B plane all 100; R at (y=2, x=3) = 48; G at (y=2, x=1) = 32.
  const std::vector<uint8_t> img = pixels(ds, 1);
  CHECK(img[2 * 12 + 5] == 100);
  CHECK(img[0 * 12 + 2 * 4 + 3] == 48);
  CHECK(img[1 * 12 + 2 * 4 + 1] == 32);
  CHECK(pixels(ds, 2)[2 * 12] == 200);
}

TEST_CASE("image folder: grey conversion and bilinear resize") {
  TempDir dir("folder_resize");
  write_png(dir.file("a/0.png"), 4, 4, 0);
  std::filesystem::create_directories(dir.file("b"));
  auto px = rgb_image(2, 2, 90);
  REQUIRE(stbi_write_bmp(dir.file("b/0.bmp").c_str(), 2, 2, 3, px.data()) != 0);
  Dataset ds = load(dir.path.string(), 1, 8, 8);
  CHECK(ds.channels == 1);
  CHECK(ds.height == 8);
  CHECK(ds.width == 8);
  // Upsampling 4 -> 8 with half-pixel centres: output x maps to source (x + 0.5) / 2 - 0.5.
  // Grey of (R, G, B) per stb: (77 R + 150 G + 29 B) >> 8; row 0 of image a: R = 16 x, G = 0, B = 0.
  auto grey = [](int r, int g, int b) { return double((77 * r + 150 * g + 29 * b) >> 8); };
  std::vector<double> row0 = {grey(0, 0, 0), grey(16, 0, 0), grey(32, 0, 0), grey(48, 0, 0)};
  for (int x = 0; x < 8; ++x) {
    double s = std::max(0.0, (x + 0.5) / 2 - 0.5);
    int i0 = std::min(int(s), 3), i1 = std::min(i0 + 1, 3);
    double want = row0[size_t(i0)] + (row0[size_t(i1)] - row0[size_t(i0)]) * (s - i0);
    INFO("x = " << x);
    CHECK(std::abs(double(pixels(ds, 0)[size_t(x)]) - want) <= 0.5 + 1e-9);
  }
  CHECK(ds.labels == std::vector<int64_t>{0, 1});
  // The 2x2 BMP, upsampled: corners keep the corner pixels exactly.
  CHECK(pixels(ds, 1)[0] == uint8_t(grey(0, 0, 90)));
  CHECK(pixels(ds, 1)[63] == uint8_t(grey(16, 16, 90)));
}

TEST_CASE("image folder: JPEG decodes close to the original") {
  TempDir dir("folder_jpg");
  std::filesystem::create_directories(dir.file("only"));
  std::vector<uint8_t> flat(16 * 16 * 3, 120);
  REQUIRE(stbi_write_jpg(dir.file("only/flat.JPG").c_str(), 16, 16, 3, flat.data(), 95) != 0);
  Dataset ds = load(dir.path.string(), 3, 16, 16);
  REQUIRE(ds.size() == 1);
  const std::vector<uint8_t> img = pixels(ds, 0);
  for (int k = 0; k < 3 * 256; ++k) REQUIRE(std::abs(int(img[size_t(k)]) - 120) <= 2);
}

TEST_CASE("image folder: errors name the file or folder") {
  TempDir dir("folder_bad");
  write_png(dir.file("cats/good.png"), 4, 4, 1);
  write_bytes(dir.file("cats/broken.png"), {0x89, 'P', 'N', 'G', 1, 2, 3});
  CHECK_THROWS_WITH_AS(load(dir.path.string(), 3, 4, 4), doctest::Contains("broken.png: not a readable image"), Error);
  std::filesystem::remove(dir.file("cats/broken.png"));
  std::filesystem::create_directories(dir.file("dogs"));
  CHECK_THROWS_WITH_AS(load(dir.path.string(), 3, 4, 4),
                       doctest::Contains("class folder 'dogs' has no .png/.jpg/.jpeg/.bmp images"), Error);
  CHECK_THROWS_WITH_AS(load(dir.file("missing"), 3, 4, 4), doctest::Contains("missing: no such directory"), Error);
  CHECK_THROWS_WITH_AS(load(dir.path.string(), 2, 4, 4), doctest::Contains("channels must be 1 or 3"), Error);
  CHECK_THROWS_WITH_AS(load_image_folder(dir.path.string(), Preprocess{3, 4, 4}, -1),
                       doctest::Contains("the cache must be >= 0 bytes"), Error);
}

TEST_CASE("registry: names, descriptions, and loading a folder by name") {
  std::vector<std::string> names;
  for (const auto& e : dataset_registry()) {
    names.push_back(e.name);
    CHECK(!e.description.empty());
    CHECK(e.description.find('\n') == std::string::npos);
  }
  CHECK(names == std::vector<std::string>{"fashion-mnist", "cifar10", "cifar100", "folder"});
  CHECK(dataset_info("cifar10").mean.size() == 3);
  CHECK_THROWS_WITH_AS(dataset_info("imagenet"), doctest::Contains("unknown dataset 'imagenet'; known datasets: fashion-mnist"),
                       Error);
  TempDir dir("registry");
  write_png(dir.file("train/a/0.png"), 5, 5, 10);
  write_png(dir.file("train/b/0.png"), 5, 5, 20);
  write_png(dir.file("val/a/0.png"), 5, 5, 30);
  write_png(dir.file("val/b/0.png"), 5, 5, 40);
  DatasetRequest req{"folder", dir.path.string(), true, 3, 6, 7};
  Dataset train = load_dataset(req);
  CHECK(train.size() == 2);
  CHECK(train.height == 6);
  CHECK(train.width == 7);
  DatasetRequest cropped = req;
  cropped.height = cropped.width = 5;
  cropped.resize_shorter = 6;
  cropped.interpolation = Interpolation::bicubic;
  cropped.cache_bytes = 4096;
  const Dataset c = load_dataset(cropped);
  const auto* source = dynamic_cast<const FolderImageSource*>(c.source.get());
  REQUIRE(source != nullptr);
  CHECK(source->preprocess() == Preprocess{3, 5, 5, 6, Interpolation::bicubic});
  CHECK(source->cache_stats().capacity_bytes == 4096);
  req.train = false;
  Dataset val = load_dataset(req);
  CHECK(val.size() == 2);
  CHECK(pixels(val, 1)[2 * 42] == 40);  // B plane of b/0.png in val
  write_png(dir.file("val/c/0.png"), 5, 5, 40);
  CHECK_THROWS_WITH_AS(load_dataset(req), doctest::Contains("has classes [a, b, c] but train/ has [a, b]"), Error);
  Dataset fm = load_dataset({"fashion-mnist", "", false});
  CHECK(fm.size() == 10000);
}
