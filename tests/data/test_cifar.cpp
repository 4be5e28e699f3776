// CIFAR-10/100 binary readers on tiny files written by the test.
#include "data_test_util.h"
#include "engine/data/cifar.h"

using namespace retort;
using namespace retort::data;
using namespace retort::test;

namespace {
// n records; record i has label (i * 3 + k) % classes and pixel j = (i + j) % 251.
std::vector<uint8_t> cifar_records(int n, int num_classes, int k) {
  std::vector<uint8_t> b;
  for (int i = 0; i < n; ++i) {
    if (num_classes == 100) b.push_back(uint8_t(i % 20));
    b.push_back(uint8_t((i * 3 + k) % num_classes));
    for (int j = 0; j < 3072; ++j) b.push_back(uint8_t((i + j) % 251));
  }
  return b;
}
}  // namespace

TEST_CASE("cifar10: tiny binary batches load in file order") {
  TempDir dir("cifar10");
  for (int k = 1; k <= 5; ++k) write_bytes(dir.file(fmt::format("data_batch_{}.bin", k)), cifar_records(2, 10, k));
  write_bytes(dir.file("test_batch.bin"), cifar_records(3, 10, 0));
  Dataset train = load_cifar(dir.path.string(), 10, true);
  CHECK(train.size() == 10);
  CHECK(train.channels == 3);
  CHECK(train.height == 32);
  CHECK(train.width == 32);
  CHECK(train.num_classes == 10);
  CHECK(train.class_names[0] == "airplane");
  CHECK(train.labels == std::vector<int64_t>{1, 4, 2, 5, 3, 6, 4, 7, 5, 8});
  // record 1 of data_batch_1: pixel j = (1 + j) % 251; R plane first, then G (offset 1024).
  CHECK(train.image(1)[0] == 1);
  CHECK(train.image(1)[1024] == uint8_t((1 + 1024) % 251));
  CHECK(train.image(3)[3071] == uint8_t((1 + 3071) % 251));
  Dataset test = load_cifar(dir.path.string(), 10, false);
  CHECK(test.size() == 3);
  CHECK(test.labels == std::vector<int64_t>{0, 3, 6});
}

TEST_CASE("cifar100: fine labels, and the nested cifar-100-binary folder is found") {
  TempDir dir("cifar100");
  write_bytes(dir.file("cifar-100-binary/train.bin"), cifar_records(4, 100, 97));
  write_bytes(dir.file("cifar-100-binary/test.bin"), cifar_records(1, 100, 5));
  Dataset train = load_cifar(dir.path.string(), 100, true);
  CHECK(train.size() == 4);
  CHECK(train.num_classes == 100);
  CHECK(train.labels == std::vector<int64_t>{97, 0, 3, 6});
  CHECK(train.image(2)[5] == uint8_t(7));
  CHECK(cifar100_class_names().size() == 100);
  CHECK(cifar100_class_names()[99] == "worm");
  CHECK(load_cifar(dir.path.string(), 100, false).labels == std::vector<int64_t>{5});
}

TEST_CASE("cifar: corrupt files fail naming the file and the byte") {
  TempDir dir("cifar_bad");
  SUBCASE("a file cut inside a record") {
    auto b = cifar_records(3, 10, 0);
    b.resize(b.size() - 100);
    write_bytes(dir.file("test_batch.bin"), b);
    CHECK_THROWS_WITH_AS(load_cifar(dir.path.string(), 10, false),
                         doctest::Contains("test_batch.bin: file ends at byte 9119 inside record 2 (which starts at byte "
                                           "6146); CIFAR-10 records are 3073 bytes"),
                         Error);
  }
  SUBCASE("a label out of range") {
    auto b = cifar_records(3, 10, 0);
    b[3073] = 10;
    write_bytes(dir.file("test_batch.bin"), b);
    CHECK_THROWS_WITH_AS(load_cifar(dir.path.string(), 10, false),
                         doctest::Contains("test_batch.bin: byte 3073: label 10 of record 1 is out of range, expected < 10"),
                         Error);
  }
  SUBCASE("a CIFAR-100 coarse label out of range") {
    auto b = cifar_records(2, 100, 0);
    b[3074] = 20;
    write_bytes(dir.file("train.bin"), b);
    CHECK_THROWS_WITH_AS(load_cifar(dir.path.string(), 100, true),
                         doctest::Contains("train.bin: byte 3074: coarse label 20 of record 1 is out of range"), Error);
  }
  SUBCASE("a missing batch file") {
    write_bytes(dir.file("data_batch_1.bin"), cifar_records(1, 10, 0));
    CHECK_THROWS_WITH_AS(load_cifar(dir.path.string(), 10, true), doctest::Contains("data_batch_2.bin: no such file"),
                         Error);
  }
  CHECK_THROWS_WITH_AS(load_cifar(dir.path.string(), 7, true), doctest::Contains("must be 10 or 100"), Error);
}
