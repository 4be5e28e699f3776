// DataLoader implementation: order from (seed, epoch), one Generator per batch from
// (seed, epoch, index), a bounded window of claimed batches shared by the worker threads.
#include "engine/data/loader.h"
#include <algorithm>
#include <numeric>
#include "engine/error.h"

namespace retort::data {
namespace {
constexpr uint64_t kShuffleStream = 0x53485546464c45ull;  // "SHUFFLE"
constexpr uint64_t kAugmentStream = 0x4155474d454e54ull;  // "AUGMENT"
}  // namespace

DataLoader::DataLoader(DatasetView data, LoaderOptions options) : data_(std::move(data)), options_(std::move(options)) {
  RETORT_CHECK(data_.dataset_ptr(), "DataLoader: the dataset view is empty (no dataset)");
  RETORT_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got {}", options_.batch_size);
  RETORT_CHECK(options_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got {}", options_.num_workers);
  RETORT_CHECK(options_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got {}", options_.prefetch);
  RETORT_CHECK(options_.shard_count >= 1 && options_.shard_index >= 0 && options_.shard_index < options_.shard_count,
               "DataLoader: shard {} of {} does not exist", options_.shard_index, options_.shard_count);
  for (const auto& t : options_.transforms) RETORT_CHECK(bool(t.apply), "DataLoader: transform '{}' has no function", t.name);
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = data_.size(), bs = options_.batch_size;
  return options_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(size_t(data_.size()));
  std::iota(order.begin(), order.end(), int64_t(0));
  if (!options_.shuffle) return order;
  Generator gen(hash64(hash64(options_.seed, kShuffleStream), uint64_t(epoch)));
  for (int64_t i = int64_t(order.size()) - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(gen.randint(i + 1))]);
  return order;
}

Batch DataLoader::build(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const {
  const int64_t bs = options_.batch_size;
  const int64_t first = index * bs, last = std::min<int64_t>(first + bs, int64_t(order.size()));
  std::vector<int64_t> positions(order.begin() + first, order.begin() + last);
  Batch b = make_batch(data_, positions);
  Generator gen(hash64(hash64(hash64(options_.seed, kAugmentStream), uint64_t(epoch)), uint64_t(index)));
  b.index = index;
  for (const auto& t : options_.transforms) t.apply(b, gen);
  if (options_.shard_count == 1) return b;
  const int64_t n = b.size(), k = options_.shard_count, i = options_.shard_index;
  return b.slice(n * i / k, n * (i + 1) / k);
}

Batch DataLoader::build_batch(int64_t epoch, int64_t index) const {
  RETORT_CHECK(index >= 0 && index < batches_per_epoch(), "DataLoader::build_batch: batch {} out of range [0, {})", index,
               batches_per_epoch());
  return build(epoch_order(epoch), epoch, index);
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.clear();
  stop_ = false;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  RETORT_CHECK(epoch >= 0, "DataLoader::start_epoch: epoch must be >= 0, got {}", epoch);
  RETORT_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(),
               "DataLoader::start_epoch: cannot resume at batch {}: an epoch has {} batches", first_batch,
               batches_per_epoch());
  stop_workers();
  epoch_ = epoch;
  order_ = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  end_ = batches_per_epoch();
  next_claim_ = next_consume_ = first_batch;
  const int64_t remaining = end_ - first_batch;
  const int64_t n_workers = std::min<int64_t>(options_.num_workers, remaining);
  for (int64_t w = 0; w < n_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

void DataLoader::worker_loop() {
  while (true) {
    int64_t index;
    std::shared_ptr<const std::vector<int64_t>> order;
    int64_t epoch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || next_claim_ >= end_ || next_claim_ < next_consume_ + options_.prefetch; });
      if (stop_ || next_claim_ >= end_) return;
      index = next_claim_++;
      order = order_;
      epoch = epoch_;
    }
    Slot slot;
    try {
      slot.batch = build(*order, epoch, index);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(index, std::move(slot));
    }
    ready_cv_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  RETORT_CHECK(epoch_ >= 0, "DataLoader::next: call start_epoch(epoch) first");
  if (next_consume_ >= end_) {
    stop_workers();
    return false;
  }
  if (workers_.empty()) {  // no workers (num_workers == 0): build here
    out = build(*order_, epoch_, next_consume_);
    ++next_consume_;
    return true;
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_.count(next_consume_) > 0; });
    auto it = ready_.find(next_consume_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
  }
  work_cv_.notify_all();
  if (slot.error) {
    stop_workers();
    std::rethrow_exception(slot.error);
  }
  out = std::move(slot.batch);
  return true;
}

}  // namespace retort::data
