// Streamed image folders: the LRU cache's order and bound, a folder larger than its cache
// through a 2-worker DataLoader (bounded memory, evictions, the same batches as a cache that
// holds everything and as a loader without workers), errors naming files, copy_image against
// in-memory decodes, and unlabelled folders appended to streamed and in-memory datasets.
#include <memory>
#include "data_test_util.h"
#include "engine/data/image_decode.h"
#include "engine/data/image_folder.h"
#include "engine/data/image_source.h"
#include "engine/data/loader.h"

#include "stb_image_write_impl.h"

using namespace retort;
using namespace retort::data;
using namespace retort::test;

namespace {

// A w x h RGB PNG whose pixels depend on `seed` (so every file is different).
void write_png(const std::string& path, int w, int h, int seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::vector<uint8_t> px(size_t(w * h * 3));
  for (size_t k = 0; k < px.size(); ++k) px[k] = uint8_t((k * 37 + size_t(seed) * 101 + (k / 3) * size_t(seed)) % 256);
  REQUIRE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0);
}

// n 12x10 PNGs in three class folders.
void write_folder(const TempDir& dir, int n) {
  for (int i = 0; i < n; ++i) write_png(dir.file(fmt::format("c{}/img{:03d}.png", i % 3, i)), 12, 10, i);
}

const Preprocess kPreprocess{3, 8, 8, 9, Interpolation::bicubic};  // 10x12 -> 9x10 -> 8x8 centre crop
constexpr int64_t kImageBytes = 3 * 8 * 8;

std::shared_ptr<const Dataset> streamed(const TempDir& dir, int64_t cache_images) {
  return std::make_shared<const Dataset>(load_image_folder(dir.path.string(), kPreprocess, cache_images * kImageBytes));
}

const FolderImageSource& folder_source(const Dataset& ds) {
  const auto* source = dynamic_cast<const FolderImageSource*>(ds.source.get());
  REQUIRE(source != nullptr);
  return *source;
}

std::vector<Batch> run_epoch(DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

void check_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("batch " << i);
    CHECK(a[i].labels == b[i].labels);
    CHECK(a[i].images == b[i].images);  // bitwise equal
  }
}

std::vector<uint8_t> copy_of(const Dataset& ds, int64_t i) {
  std::vector<uint8_t> out(size_t(ds.image_numel()));
  ds.copy_image(i, out.data());
  return out;
}

}  // namespace

TEST_CASE("image cache: least recently used images go first, the bound holds, 0 keeps nothing") {
  ImageCache cache(2 * 4);  // two 4-byte images
  const uint8_t a[4] = {1, 1, 1, 1}, b[4] = {2, 2, 2, 2}, c[4] = {3, 3, 3, 3};
  uint8_t out[4] = {};
  CHECK(!cache.lookup(0, out, 4));
  cache.insert(0, a, 4);
  cache.insert(1, b, 4);
  CHECK(cache.lookup(0, out, 4));  // 0 is now the most recently used
  CHECK(out[0] == 1);
  cache.insert(2, c, 4);  // evicts 1, the least recently used
  CHECK(!cache.lookup(1, out, 4));
  CHECK(cache.lookup(2, out, 4));
  CHECK(out[3] == 3);
  CHECK(cache.lookup(0, out, 4));
  const CacheStats s = cache.stats();
  CHECK(s.hits == 3);
  CHECK(s.misses == 2);
  CHECK(s.evictions == 1);
  CHECK(s.resident_bytes == 8);
  CHECK(s.peak_resident_bytes == 8);
  ImageCache none(0);
  none.insert(0, a, 4);
  CHECK(!none.lookup(0, out, 4));
  CHECK(none.stats().peak_resident_bytes == 0);
  CHECK_THROWS_WITH_AS(ImageCache(-1), doctest::Contains("capacity must be >= 0 bytes"), Error);
}

TEST_CASE("image source: a folder larger than its cache streams through a 2-worker loader, same batches") {
  TempDir dir("stream");
  write_folder(dir, 120);
  auto small = streamed(dir, 20);  // a sixth of the folder
  auto large = streamed(dir, 120);
  CHECK(small->size() == 120);
  CHECK(small->images.empty());
  CHECK(folder_source(*small).cache_stats().misses == 0);  // loading decodes nothing

  LoaderOptions o;
  o.batch_size = 16;
  o.seed = 99;
  o.num_workers = 2;
  o.prefetch = 2;
  o.transforms = {random_hflip_transform(0.5)};
  DataLoader small_loader(DatasetView(small), o), large_loader(DatasetView(large), o);
  const auto small0 = run_epoch(small_loader, 0);
  const CacheStats after0 = folder_source(*small).cache_stats();
  const auto small1 = run_epoch(small_loader, 1);
  const CacheStats after1 = folder_source(*small).cache_stats();
  const auto large0 = run_epoch(large_loader, 0), large1 = run_epoch(large_loader, 1);

  MESSAGE("cache of 20 images: peak " << after1.peak_resident_bytes << " of " << after1.capacity_bytes
          << " bytes; epoch 1 " << after0.misses << " misses; epoch 2 " << after1.hits - after0.hits << " hits, "
          << after1.misses - after0.misses << " misses; " << after1.evictions << " evictions");
  CHECK(after0.misses == 120);  // every image decoded once in epoch 1
  CHECK(after1.capacity_bytes == 20 * kImageBytes);
  CHECK(after1.peak_resident_bytes <= after1.capacity_bytes);
  CHECK(after1.peak_resident_bytes == 20 * kImageBytes);  // it did fill up
  CHECK(after1.misses - after0.misses > 0);  // epoch 2 decoded again: images were evicted
  CHECK(after1.hits + after1.misses == 240);
  CHECK(after1.evictions >= 100);
  const CacheStats big = folder_source(*large).cache_stats();
  CHECK(big.misses == 120);  // a cache that holds everything decodes each image once
  CHECK(big.hits == 120);
  CHECK(big.peak_resident_bytes == 120 * kImageBytes);

  check_same(small0, large0);
  check_same(small1, large1);
  o.num_workers = 0;
  DataLoader serial(DatasetView(streamed(dir, 20)), o);
  check_same(run_epoch(serial, 0), small0);
  check_same(run_epoch(serial, 1), small1);
  CHECK(small0.front().shape() == Shape{16, 3, 8, 8});
}

TEST_CASE("image source: copy_image equals a direct decode and an in-memory dataset") {
  TempDir dir("copy");
  write_folder(dir, 6);
  auto ds = streamed(dir, 0);  // no cache: every copy decodes
  Dataset in_memory;
  in_memory.channels = 3, in_memory.height = 8, in_memory.width = 8;
  append_unlabelled_folder(in_memory, dir.path.string(), kPreprocess, 0);
  REQUIRE(in_memory.size() == 6);
  REQUIRE(in_memory.in_memory());
  const auto& files = folder_source(*ds).files();
  for (int64_t i = 0; i < ds->size(); ++i) {
    INFO(files[size_t(i)]);
    std::vector<uint8_t> direct(kImageBytes);
    decode_image_file(files[size_t(i)], kPreprocess, direct.data());
    CHECK(copy_of(*ds, i) == direct);
    // The folder sorts by path (c0/img000, c0/img003, ...); so does the recursive listing.
    CHECK(copy_of(in_memory, i) == direct);
    CHECK(std::equal(direct.begin(), direct.end(), in_memory.image(i)));
  }
  CHECK(copy_of(*ds, 0) != copy_of(*ds, 1));
  CHECK(folder_source(*ds).cache_stats().resident_bytes == 0);
  CHECK(folder_source(*ds).describe(2) == files[2]);
  CHECK_THROWS_WITH_AS(ds->image(0), doctest::Contains("streamed from disk, not held in memory; read image 0 with copy_image"),
                       Error);
  std::vector<uint8_t> out(kImageBytes);
  CHECK_THROWS_WITH_AS(ds->copy_image(6, out.data()), doctest::Contains("image 6 out of range [0, 6)"), Error);
}

TEST_CASE("image source: bad files are named, at load when the header shows it, else when read") {
  TempDir dir("stream_bad");
  write_folder(dir, 6);
  write_bytes(dir.file("c1/broken.png"), {0x89, 'P', 'N', 'G', 1, 2, 3});
  CHECK_THROWS_WITH_AS(load_image_folder(dir.path.string(), kPreprocess, 0),
                       doctest::Contains("broken.png: not a readable image"), Error);
  std::filesystem::remove(dir.file("c1/broken.png"));

  // Too small for the crop: 10x12 resized to shorter side 9 is 9x10, less than a 9x11 crop.
  CHECK_THROWS_WITH_AS(load_image_folder(dir.path.string(), {3, 9, 11, 9, Interpolation::bilinear}, 0),
                       doctest::Contains("img000.png: a 10x12 image resized to shorter side 9 is 9x10, smaller than the "
                                         "9x11 centre crop"),
                       Error);

  // A sound header over cut-off pixel data passes the load and fails when its pixels are read.
  std::vector<uint8_t> png = read_raw(dir.file("c2/img002.png"));
  png.resize(png.size() / 2);
  write_bytes(dir.file("c2/img002.png"), png);
  auto ds = streamed(dir, 4);
  LoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  o.num_workers = 2;
  DataLoader loader(DatasetView(ds), o);
  loader.start_epoch(0);
  auto drain = [&] {
    Batch b;
    while (loader.next(b)) {
    }
  };
  CHECK_THROWS_WITH_AS(drain(), doctest::Contains("img002.png: cannot decode image"), Error);
}

TEST_CASE("image source: an unlabelled folder appended to a streamed dataset") {
  TempDir dir("stream_extra");
  write_png(dir.file("train/k0/a.png"), 12, 10, 0);
  write_png(dir.file("train/k1/a.png"), 12, 10, 1);
  write_png(dir.file("extra/x.png"), 12, 10, 50);
  write_png(dir.file("extra/deep/y.png"), 12, 10, 51);
  Dataset ds = load_image_folder(dir.file("train"), kPreprocess, 3 * kImageBytes);
  REQUIRE(ds.size() == 2);  // k0/a.png, k1/a.png
  append_unlabelled_folder(ds, dir.file("extra"), kPreprocess, 10 * kImageBytes);
  ds.validate();
  CHECK(ds.size() == 4);
  CHECK(ds.labels == std::vector<int64_t>{0, 1, 0, 0});
  CHECK(!ds.in_memory());
  const auto& source = folder_source(ds);
  CHECK(source.cache_stats().capacity_bytes == 10 * kImageBytes);
  CHECK(source.files().back() == dir.file("extra/x.png"));  // "deep/y.png" sorts before "x.png"
  std::vector<uint8_t> direct(kImageBytes);
  decode_image_file(dir.file("extra/x.png"), kPreprocess, direct.data());
  CHECK(copy_of(ds, 3) == direct);

  Preprocess other = kPreprocess;
  other.interpolation = Interpolation::bilinear;
  CHECK_THROWS_WITH_AS(append_unlabelled_folder(ds, dir.file("extra"), other, 0),
                       doctest::Contains("is streamed with 'resize shorter side to 9 (bicubic), centre crop 8x8'"), Error);
  CHECK_THROWS_WITH_AS(append_unlabelled_folder(ds, dir.file("extra"), {3, 7, 7, 9}, 0),
                       doctest::Contains("its images would be 3x7x7 but dataset"), Error);
  ds.labels.push_back(0);
  CHECK_THROWS_WITH_AS(ds.validate(), doctest::Contains("the image source has 4 images for 5 labels"), Error);
}
