// DataLoader: seeded per-epoch shuffling, batching, augmentation, and background worker
// threads that build batches ahead of the trainer. Batch order and content depend only on
// (seed, epoch, batch index), never on thread timing: workers claim batch indices, the
// consumer takes them back in index order.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include "engine/data/batch.h"
#include "engine/data/dataset.h"
#include "engine/data/transforms.h"

namespace retort::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;  // drop a last batch smaller than batch_size
  uint64_t seed = 0;
  int num_workers = 2;  // 0: batches are built on the calling thread
  int prefetch = 4;     // at most this many batches built ahead of the consumer
  std::vector<BatchTransform> transforms;  // applied in order to each batch
  // Data parallelism: each batch is built whole (the same augmentation draws as one process),
  // then only rows [B * shard_index / shard_count, B * (shard_index + 1) / shard_count) are kept.
  int shard_index = 0, shard_count = 1;
};

class DataLoader {
 public:
  DataLoader(DatasetView data, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t num_samples() const { return data_.size(); }
  const LoaderOptions& options() const { return options_; }
  const DatasetView& data() const { return data_; }

  // View positions in the order epoch `epoch` visits them: a permutation drawn from
  // (seed, epoch) when shuffling, else 0..N-1.
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Builds batch `index` of `epoch` on this thread (what the workers run); for tests and tools.
  Batch build_batch(int64_t epoch, int64_t index) const;

  // Starts (or restarts) an epoch at batch `first_batch` (resuming mid-epoch); any batches
  // still in flight from a previous epoch are discarded.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch into `out`; false when the epoch is done. A worker's
  // exception is rethrown here.
  bool next(Batch& out);
  int64_t epoch() const { return epoch_; }
  int64_t next_batch_index() const { return next_consume_; }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  Batch build(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;
  void worker_loop();
  void stop_workers();

  DatasetView data_;
  LoaderOptions options_;

  int64_t epoch_ = -1;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t end_ = 0;           // one past the last batch index of the epoch
  int64_t next_claim_ = 0;    // next batch index a worker will build
  int64_t next_consume_ = 0;  // next batch index next() returns
  bool stop_ = false;
  std::map<int64_t, Slot> ready_;
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<std::thread> workers_;
};

}  // namespace retort::data
