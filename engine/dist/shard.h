// Which slice of a global batch the current forward pass computes, and with whom BatchNorm
// shares its statistics. Set by the trainer around a data-parallel step (one rank, or one
// micro-batch, computes shard `index` of `count` contiguous, equal slices); read by
//   Dropout: draws the mask elements the whole batch would draw for this slice, so each
//            example gets the mask a one-process run gives it;
//   BatchNorm2d: with `sync_bn`, normalises with the statistics of the whole global batch
//            (SyncBN) instead of its slice's.
// The scope is per thread, so tests can run several ranks as threads of one process.
#pragma once
#include "engine/dist/communicator.h"

namespace retort::dist {

struct Shard {
  int index = 0, count = 1;
  Communicator* sync_bn = nullptr;  // null: BatchNorm uses its own slice's statistics
  // Another micro-batch of a step this process already computed a slice of: BatchNorm does not
  // count the step again (num_batches_tracked moves once per step, as on every rank).
  bool repeat = false;
  // Rows of the step's global batch (every rank's slices), or 0 when unknown: SyncBN's global
  // count then needs no device read.
  int64_t global_rows = 0;
};

// The shard the calling thread computes now ({0, 1, null} outside any ShardScope).
const Shard& current_shard();

class ShardScope {
 public:
  explicit ShardScope(Shard shard);
  ~ShardScope();
  ShardScope(const ShardScope&) = delete;
  ShardScope& operator=(const ShardScope&) = delete;

 private:
  Shard saved_;
};

}  // namespace retort::dist
