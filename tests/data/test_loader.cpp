// DataLoader: batch counts, deterministic order/content across worker counts, resume mid-epoch,
// per-epoch shuffles, conversion to tensors.
#include <memory>
#include <set>
#include "data_test_util.h"
#include "engine/data/loader.h"

using namespace retort;
using namespace retort::data;

namespace {

// n images of 3x6x5 with a per-image pattern; label = i % classes.
std::shared_ptr<const Dataset> synthetic_dataset(int64_t n, int64_t classes = 4) {
  auto ds = std::make_shared<Dataset>();
  ds->name = "synthetic";
  ds->channels = 3, ds->height = 6, ds->width = 5;
  ds->num_classes = classes;
  for (int64_t c = 0; c < classes; ++c) ds->class_names.push_back(fmt::format("c{}", c));
  for (int64_t i = 0; i < n; ++i) {
    ds->labels.push_back(i % classes);
    for (int64_t k = 0; k < ds->image_numel(); ++k) ds->images.push_back(uint8_t((i * 31 + k * 3) % 256));
  }
  ds->validate();
  return ds;
}

std::vector<Batch> run_epoch(DataLoader& loader, int64_t epoch, int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

void check_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("batch " << i);
    CHECK(a[i].index == b[i].index);
    CHECK(a[i].labels == b[i].labels);
    CHECK(a[i].shape() == b[i].shape());
    CHECK(a[i].images == b[i].images);  // bitwise equal
  }
}

LoaderOptions augmenting_options(int workers) {
  LoaderOptions o;
  o.batch_size = 7;
  o.seed = 1234;
  o.num_workers = workers;
  o.prefetch = 3;
  o.transforms = {random_crop_transform(2), random_hflip_transform(0.5),
                  normalize_transform({0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f})};
  return o;
}

}  // namespace

TEST_CASE("loader: batches per epoch with and without drop_last") {
  auto ds = synthetic_dataset(23);
  LoaderOptions o;
  o.batch_size = 5;
  o.num_workers = 2;
  DataLoader keep(DatasetView(ds), o);
  CHECK(keep.batches_per_epoch() == 5);
  auto batches = run_epoch(keep, 0);
  REQUIRE(batches.size() == 5);
  CHECK(batches.back().size() == 3);
  std::multiset<int64_t> seen;
  for (auto& b : batches)
    for (auto l : b.labels) seen.insert(l);
  CHECK(seen.size() == 23);
  o.drop_last = true;
  DataLoader drop(DatasetView(ds), o);
  CHECK(drop.batches_per_epoch() == 4);
  auto dropped = run_epoch(drop, 0);
  CHECK(dropped.size() == 4);
  for (auto& b : dropped) CHECK(b.size() == 5);
}

TEST_CASE("loader: every sample once per epoch, pixels scaled to [0, 1]") {
  auto ds = synthetic_dataset(17);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 9;
  o.num_workers = 2;
  DataLoader loader(DatasetView(ds), o);
  auto order = loader.epoch_order(3);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 17; ++i) CHECK(sorted[size_t(i)] == i);
  auto batches = run_epoch(loader, 3);
  int64_t pos = 0;
  for (auto& b : batches)
    for (int64_t j = 0; j < b.size(); ++j, ++pos) {
      const int64_t idx = order[size_t(pos)];
      CHECK(b.labels[size_t(j)] == ds->labels[size_t(idx)]);
      CHECK(b.image(j)[4] == doctest::Approx(ds->image(idx)[4] / 255.0));
    }
  CHECK(pos == 17);
  CHECK(loader.epoch_order(3) == order);        // depends only on (seed, epoch)
  CHECK(loader.epoch_order(4) != order);        // a new permutation each epoch
  o.shuffle = false;
  DataLoader plain(DatasetView(ds), o);
  auto ordered = plain.epoch_order(5);
  for (int64_t i = 0; i < 17; ++i) CHECK(ordered[size_t(i)] == i);
}

TEST_CASE("loader: same batches for the same seed with 0, 1 and 3 workers") {
  auto ds = synthetic_dataset(101);
  DataLoader l0(DatasetView(ds), augmenting_options(0));
  DataLoader l1(DatasetView(ds), augmenting_options(1));
  DataLoader l3(DatasetView(ds), augmenting_options(3));
  for (int64_t epoch : {0, 1}) {
    auto a = run_epoch(l1, epoch), b = run_epoch(l3, epoch), c = run_epoch(l0, epoch);
    check_same(a, b);
    check_same(a, c);
  }
  // A different seed changes the order or the augmentation.
  auto other = augmenting_options(2);
  other.seed = 4321;
  DataLoader l_other(DatasetView(ds), other);
  auto a = run_epoch(l1, 0), d = run_epoch(l_other, 0);
  REQUIRE(a.size() == d.size());
  CHECK(a[0].images != d[0].images);
}

TEST_CASE("loader: resuming at batch k gives the same remaining batches") {
  auto ds = synthetic_dataset(60);
  DataLoader full(DatasetView(ds), augmenting_options(2));
  DataLoader resumed(DatasetView(ds), augmenting_options(3));
  auto all = run_epoch(full, 2);
  REQUIRE(full.batches_per_epoch() == 9);
  for (int64_t k : {0, 4, 8, 9}) {
    auto rest = run_epoch(resumed, 2, k);
    std::vector<Batch> expected(all.begin() + k, all.end());
    check_same(rest, expected);
  }
  CHECK_THROWS_WITH_AS(resumed.start_epoch(2, 10), doctest::Contains("an epoch has 9 batches"), Error);
  // build_batch (no threads) agrees too.
  Batch b5 = full.build_batch(2, 5);
  CHECK(b5.images == all[5].images);
  CHECK(b5.labels == all[5].labels);
}

TEST_CASE("loader: abandoning an epoch midway and restarting is safe") {
  auto ds = synthetic_dataset(80);
  DataLoader loader(DatasetView(ds), augmenting_options(3));
  loader.start_epoch(0);
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(loader.next(b));
  auto again = run_epoch(loader, 0);  // restart while workers are mid-flight
  DataLoader fresh(DatasetView(ds), augmenting_options(1));
  check_same(again, run_epoch(fresh, 0));
}

TEST_CASE("loader: a worker's exception reaches the consumer") {
  auto ds = synthetic_dataset(30);
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 2;
  o.transforms = {{"boom", [](Batch& b, Generator&) {
                     if (b.index == 3) retort::fail("boom in batch {}", b.index);
                   }}};
  DataLoader loader(DatasetView(ds), o);
  loader.start_epoch(0);
  Batch b;
  for (int64_t i = 0; i < 3; ++i) {
    REQUIRE(loader.next(b));
    CHECK(b.index == i);
  }
  CHECK_THROWS_WITH_AS(loader.next(b), doctest::Contains("boom in batch 3"), Error);
  // The loader is usable again after the failure: resuming past the bad batch works.
  loader.start_epoch(0, 4);
  int64_t got = 0;
  while (loader.next(b)) ++got;
  CHECK(got == loader.batches_per_epoch() - 4);
}

TEST_CASE("loader: batches become tensors") {
  auto ds = synthetic_dataset(10);
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  o.num_workers = 1;
  DataLoader loader(DatasetView(ds), o);
  loader.start_epoch(0);
  Batch b;
  REQUIRE(loader.next(b));
  auto [x, y] = b.to_tensors(Device::cpu());
  CHECK(x.shape() == Shape{4, 3, 6, 5});
  CHECK(x.dtype() == DType::f32);
  CHECK(y.shape() == Shape{4});
  CHECK(y.dtype() == DType::i64);
  CHECK(y.to_i64_vector() == std::vector<int64_t>{0, 1, 2, 3});
  auto xv = x.to_vector();
  CHECK(xv[size_t(90 + 7)] == doctest::Approx(ds->image(1)[7] / 255.0));
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: batch to device tensors") {
  RETORT_REQUIRE_GPU();
  auto ds = synthetic_dataset(9);
  LoaderOptions o;
  o.batch_size = 9;
  o.num_workers = 1;
  o.transforms = {random_crop_transform(1), normalize_transform({0.5f}, {0.25f})};
  DataLoader loader(DatasetView(ds), o);
  loader.start_epoch(0);
  Batch b;
  REQUIRE(loader.next(b));
  auto [x, y] = b.to_tensors(Device::cuda(0));
  CHECK(x.device() == Device::cuda(0));
  CHECK(y.device() == Device::cuda(0));
  CHECK(x.shape() == Shape{9, 3, 6, 5});
  auto host = b.images_tensor();
  CHECK(retort::test::max_rel_error(x.to(Device::cpu()), host, 1.0) == 0.0);
  CHECK(y.to_i64_vector() == b.labels);
}
}

TEST_CASE("loader: a shard keeps its slice of every augmented batch, as the whole batch drew it") {
  auto ds = synthetic_dataset(23);
  LoaderOptions whole_opts = augmenting_options(2);
  whole_opts.batch_size = 8;
  whole_opts.drop_last = true;
  DataLoader whole(DatasetView(ds), whole_opts);
  const auto full = run_epoch(whole, 1);
  for (int shard = 0; shard < 4; ++shard) {
    LoaderOptions o = whole_opts;
    o.shard_index = shard;
    o.shard_count = 4;
    DataLoader part(DatasetView(ds), o);
    const auto batches = run_epoch(part, 1);
    REQUIRE(batches.size() == full.size());
    for (size_t i = 0; i < full.size(); ++i) {
      const Batch expect = full[i].slice(2 * shard, 2 * shard + 2);
      CHECK(batches[i].images == expect.images);  // bitwise: the crop and flip draws of the whole batch
      CHECK(batches[i].labels == expect.labels);
      CHECK(batches[i].positions == expect.positions);
    }
  }
  LoaderOptions bad = whole_opts;
  bad.shard_index = 4;
  bad.shard_count = 4;
  CHECK_THROWS_WITH_AS(DataLoader(DatasetView(ds), bad), doctest::Contains("shard 4 of 4 does not exist"), Error);
}
