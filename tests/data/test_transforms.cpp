// Batch transforms: hand-computed normalise/flip/crop/resize cases and determinism per seed.
#include <cmath>
#include <memory>
#include "data_test_util.h"
#include "engine/data/transforms.h"

using namespace retort;
using namespace retort::data;

namespace {
// B images of C x H x W with value = 1000 * i + 100 * c + 10 * y + x (distinct everywhere).
Batch indexed_batch(int64_t B, int64_t C, int64_t H, int64_t W) {
  Batch b;
  b.batch = B, b.channels = C, b.height = H, b.width = W;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) b.images.push_back(float(1000 * i + 100 * c + 10 * y + x));
  b.labels.assign(size_t(B), 0);
  return b;
}
float at(const Batch& b, int64_t i, int64_t c, int64_t y, int64_t x) {
  return b.images[size_t(((i * b.channels + c) * b.height + y) * b.width + x)];
}
}  // namespace

TEST_CASE("transforms: u8 to [0, 1] and normalise per channel") {
  auto ds = std::make_shared<Dataset>();
  ds->name = "two";
  ds->channels = 2, ds->height = 1, ds->width = 2;
  ds->num_classes = 3;
  ds->images = {0, 255, 51, 102, 10, 20, 30, 40};
  ds->labels = {2, 1};
  Batch b = make_batch(DatasetView(ds), {1, 0});
  CHECK(b.labels == std::vector<int64_t>{1, 2});
  CHECK(b.images[4] == 0.0f);
  CHECK(b.images[5] == 1.0f);
  CHECK(b.images[6] == doctest::Approx(0.2));
  normalize(b, {0.5f, 0.1f}, {0.25f, 0.5f});
  CHECK(b.images[4] == doctest::Approx(-2.0));
  CHECK(b.images[5] == doctest::Approx(2.0));
  CHECK(b.images[6] == doctest::Approx((0.2 - 0.1) / 0.5));
  CHECK_THROWS_WITH_AS(normalize(b, {0.1f, 0.2f, 0.3f}, {1.0f}), doctest::Contains("mean has 3 entries for 2-channel"),
                       Error);
}

TEST_CASE("transforms: horizontal flip with p = 1 and p = 0") {
  Batch b = indexed_batch(2, 2, 2, 3);
  Generator g(1);
  random_hflip(b, g, 1.0);
  CHECK(at(b, 1, 1, 1, 0) == 1112.0f);
  CHECK(at(b, 1, 1, 1, 2) == 1110.0f);
  CHECK(at(b, 0, 0, 0, 1) == 1.0f);
  Batch c = indexed_batch(2, 2, 2, 3);
  random_hflip(c, g, 0.0);
  CHECK(c.images == indexed_batch(2, 2, 2, 3).images);
}

TEST_CASE("transforms: random crop shifts with zero padding") {
  const int64_t H = 5, W = 6, pad = 2;
  Batch b = indexed_batch(40, 2, H, W);
  const Batch orig = b;
  Generator g(77);
  random_crop(b, pad, g);
  int64_t shifted = 0;
  for (int64_t i = 0; i < 40; ++i) {
    // Recover the shift from where the image's own pixels landed: every output pixel is either
    // 0 (padding) or the input at (y + dy, x + dx) for one (dy, dx) in [-pad, pad]^2.
    bool found = false;
    for (int64_t dy = -pad; dy <= pad && !found; ++dy)
      for (int64_t dx = -pad; dx <= pad && !found; ++dx) {
        bool ok = true;
        for (int64_t c = 0; c < 2 && ok; ++c)
          for (int64_t y = 0; y < H && ok; ++y)
            for (int64_t x = 0; x < W && ok; ++x) {
              const int64_t sy = y + dy, sx = x + dx;
              const float want = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? at(orig, i, c, sy, sx) : 0.0f;
              ok = at(b, i, c, y, x) == want;
            }
        if (ok) found = true, shifted += (dy != 0 || dx != 0);
      }
    CHECK(found);
  }
  CHECK(shifted > 20);  // 24 of 25 shifts move the image
  Batch same = indexed_batch(3, 1, 4, 4);
  Generator g0(5);
  random_crop(same, 0, g0);
  CHECK(same.images == indexed_batch(3, 1, 4, 4).images);
}

TEST_CASE("transforms: bilinear resize hand-computed") {
  Batch b;
  b.batch = 1, b.channels = 1, b.height = 2, b.width = 2;
  b.images = {0, 1, 2, 3};
  b.labels = {0};
  resize(b, 4, 4);
  CHECK(b.height == 4);
  CHECK(b.width == 4);
  // PyTorch interpolate(bilinear, align_corners=False) of [[0,1],[2,3]] to 4x4.
  const std::vector<float> want = {0.0f, 0.25f, 0.75f, 1.0f, 0.5f, 0.75f, 1.25f, 1.5f,
                                   1.5f, 1.75f, 2.25f, 2.5f, 2.0f, 2.25f, 2.75f, 3.0f};
  for (size_t k = 0; k < want.size(); ++k) CHECK(b.images[k] == doctest::Approx(want[k]));
  resize(b, 2, 2);  // 4 -> 2: averages of the 2x2 blocks' centres
  CHECK(b.images[0] == doctest::Approx(0.375));
  CHECK(b.images[3] == doctest::Approx(2.625));
}

TEST_CASE("transforms: deterministic per seed, different across seeds") {
  auto run = [](uint64_t seed) {
    Batch b = indexed_batch(16, 3, 8, 8);
    Generator g(seed);
    random_crop(b, 3, g);
    random_hflip(b, g);
    return b.images;
  };
  CHECK(run(11) == run(11));
  CHECK(run(11) != run(12));
  BatchTransform t = random_crop_transform(4);
  CHECK(t.name == "random_crop(pad=4)");
}
