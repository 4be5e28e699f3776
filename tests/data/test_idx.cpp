// IDX / Fashion-MNIST readers: the real files, and corrupt files that must fail naming the file.
#include <filesystem>
#include "data_test_util.h"
#include "engine/data/idx.h"

using namespace retort;
using namespace retort::data;
using namespace retort::test;

TEST_CASE("fashion-mnist: the installed files load with the right counts") {
  REQUIRE_MESSAGE(std::filesystem::exists(std::string(kFashionMnistDefaultDir) + "/train-images-idx3-ubyte.gz"),
                  "Fashion-MNIST missing: apt-get install dataset-fashion-mnist");
  Dataset train = load_fashion_mnist(kFashionMnistDefaultDir, true);
  CHECK(train.size() == 60000);
  CHECK(train.channels == 1);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  CHECK(train.num_classes == 10);
  CHECK(train.images.size() == size_t(60000) * 784);
  CHECK(train.labels[0] == 9);  // the first training image is an ankle boot
  CHECK(train.class_names[9] == "Ankle boot");
  std::vector<int64_t> counts(10, 0);
  for (int64_t l : train.labels) {
    REQUIRE(l >= 0);
    REQUIRE(l < 10);
    ++counts[size_t(l)];
  }
  for (int64_t c : counts) CHECK(c == 6000);  // Fashion-MNIST is balanced
  int64_t pixel_sum = 0;
  for (int k = 0; k < 784; ++k) pixel_sum += train.images[size_t(k)];
  CHECK(pixel_sum > 0);

  Dataset test = load_fashion_mnist(kFashionMnistDefaultDir, false);
  CHECK(test.size() == 10000);
  CHECK(test.height == 28);
  CHECK(test.width == 28);
  CHECK(test.labels[0] == 9);
  for (int64_t l : test.labels) REQUIRE((l >= 0 && l < 10));
}

TEST_CASE("idx: gzip and plain files load the same") {
  TempDir dir("idx_ok");
  auto images = idx_images_bytes(5, 3, 4);
  auto labels = idx_labels_bytes({0, 1, 2, 1, 0});
  write_gzip(dir.file("img.gz"), images);
  write_bytes(dir.file("img"), images);
  write_gzip(dir.file("lbl.gz"), labels);
  Dataset a = load_idx_dataset(dir.file("img.gz"), dir.file("lbl.gz"), 3, "tiny");
  Dataset b = load_idx_dataset(dir.file("img"), dir.file("lbl.gz"), 3, "tiny");
  CHECK(a.size() == 5);
  CHECK(a.height == 3);
  CHECK(a.width == 4);
  CHECK(a.images == b.images);
  CHECK(a.images[size_t(2 * 12 + 5)] == uint8_t((2 * 7 + 5) % 256));
  CHECK(a.labels == std::vector<int64_t>{0, 1, 2, 1, 0});
}

TEST_CASE("idx: corrupt files fail with the file name, byte offset and what was expected") {
  TempDir dir("idx_bad");
  auto images = idx_images_bytes(4, 5, 5);
  auto labels = idx_labels_bytes({0, 1, 2, 3});

  SUBCASE("wrong magic") {
    write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images_bytes(4, 5, 5, 0x804));
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("train-images-idx3-ubyte.gz")),
                         doctest::Contains("train-images-idx3-ubyte.gz: byte 0: bad magic 0x00000804, expected "
                                           "0x00000803 (IDX u8 3-d images)"),
                         Error);
    write_bytes(dir.file("labels-plain"), idx_labels_bytes({1, 2}, 0x803));
    CHECK_THROWS_WITH_AS(load_idx_labels(dir.file("labels-plain"), 10),
                         doctest::Contains("labels-plain: byte 0: bad magic 0x00000803, expected 0x00000801"), Error);
  }
  SUBCASE("truncated IDX payload") {
    auto cut = images;
    cut.resize(16 + 4 * 25 - 7);
    write_gzip(dir.file("cut-images.gz"), cut);
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("cut-images.gz")),
                         doctest::Contains("cut-images.gz: file ends at byte 109 but the header promises 116 bytes"),
                         Error);
  }
  SUBCASE("truncated header") {
    write_bytes(dir.file("short"), {0, 0, 8, 3, 0, 0});
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("short")),
                         doctest::Contains("short: file ends at byte 6 but the IDX header of IDX u8 3-d images needs 16"),
                         Error);
  }
  SUBCASE("absurd header sizes") {
    std::vector<uint8_t> b;
    put_be32(b, 0x803), put_be32(b, 0xFFFFFFFFu), put_be32(b, 0xFFFFFFFFu), put_be32(b, 0xFFFFFFFFu);
    write_bytes(dir.file("huge"), b);
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("huge")),
                         doctest::Contains("huge: byte 4: header promises 4294967295 images of 4294967295x4294967295"),
                         Error);
    b.resize(12);
    put_be32(b, 0);
    write_bytes(dir.file("zero-cols"), b);
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("zero-cols")), doctest::Contains("zero-cols: byte 8: image size"),
                         Error);
  }
  SUBCASE("extra trailing bytes (wrong size)") {
    auto longer = images;
    longer.push_back(1), longer.push_back(2);
    write_bytes(dir.file("long-images"), longer);
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("long-images")),
                         doctest::Contains("long-images: byte 116: 2 unexpected trailing bytes"), Error);
  }
  SUBCASE("truncated gzip stream") {
    write_gzip(dir.file("whole.gz"), images);
    auto gz = read_raw(dir.file("whole.gz"));
    gz.resize(gz.size() / 2);
    write_bytes(dir.file("half.gz"), gz);
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("half.gz")),
                         doctest::Contains("half.gz: gzip stream is truncated or corrupt"), Error);
  }
  SUBCASE("missing file") {
    CHECK_THROWS_WITH_AS(load_idx_images(dir.file("nope.gz")), doctest::Contains("nope.gz: no such file"), Error);
  }
  SUBCASE("label count mismatch") {
    write_gzip(dir.file("i.gz"), images);
    write_gzip(dir.file("l.gz"), idx_labels_bytes({0, 1, 2}));
    CHECK_THROWS_WITH_AS(load_idx_dataset(dir.file("i.gz"), dir.file("l.gz"), 10, "x"),
                         doctest::Contains("l.gz: 3 labels but i.gz has 4 images"), Error);
  }
  SUBCASE("label out of range") {
    write_gzip(dir.file("l.gz"), idx_labels_bytes({0, 1, 12, 3}));
    CHECK_THROWS_WITH_AS(load_idx_labels(dir.file("l.gz"), 10),
                         doctest::Contains("l.gz: byte 10: label 12 is out of range, expected < 10 (entry 2 of 4)"), Error);
  }
  SUBCASE("fashion-mnist directory with a bad file names that file") {
    write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images_bytes(3, 28, 28));
    write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels_bytes({0, 1}));
    CHECK_THROWS_WITH_AS(load_fashion_mnist(dir.path.string(), true),
                         doctest::Contains("train-labels-idx1-ubyte.gz: 2 labels but train-images-idx3-ubyte.gz has 3"),
                         Error);
  }
}
