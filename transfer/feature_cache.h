// Teacher-feature cache. A frozen teacher on un-augmented data gives the same taps for an
// image every epoch, so they are computed once for the whole training view and gathered per
// batch by the batch's view positions. Kept in memory, and optionally in safetensors files
// named by a key of (teacher weights, data, tap), so later runs reuse them.
// compute_view_taps (the one-pass forward over a view) also feeds transfer-set retrieval.
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/data/transforms.h"
#include "engine/dist/communicator.h"
#include "models/model.h"

namespace retort::transfer {

// Runs `model` (eval mode, no grad) over every image of `view` in view order, with
// `transforms` applied per batch (they must be deterministic), and returns each requested tap
// (and "logits" when asked) stacked on the host as f32 [N, ...]. With a `group` of several
// data-parallel ranks, each rank runs a contiguous share of the batches (the batches one process
// would run) and the rows are gathered, so every rank holds the rows one process computes.
models::Taps compute_view_taps(models::Model& model, const std::set<std::string>& taps, const data::DatasetView& view,
                               const std::vector<data::BatchTransform>& transforms, Device device,
                               int64_t batch_size = 256, dist::Communicator* group = nullptr);

// A key for one cached tap: a 128-bit content hash over the teacher's state (names, shapes
// and bytes), `data_key` (dataset, preprocessing), the view's indices and pixels, and the tap
// name, as 32 hex digits.
std::string feature_cache_key(const models::Model& teacher, const std::string& data_key, const data::DatasetView& view,
                              const std::string& tap);

class TeacherFeatureCache {
 public:
  TeacherFeatureCache() = default;
  // Computes (or, with a non-empty file_dir, loads when present and otherwise computes and
  // saves) the taps of `teacher` for `view`. `log` receives one line per tap. With a `group`
  // of ranks the computation is shared (compute_view_taps) and rank 0 alone writes the file.
  TeacherFeatureCache(models::Model& teacher, const std::string& teacher_name, const std::set<std::string>& taps,
                      const data::DatasetView& view, const std::vector<data::BatchTransform>& transforms,
                      Device device, const std::string& data_key, const std::string& file_dir,
                      const std::function<void(const std::string&)>& log = {}, dist::Communicator* group = nullptr);

  // The cached taps of the images at these view positions, [B, ...] on `device`.
  models::Taps gather(const std::vector<int64_t>& positions, Device device) const;
  int64_t bytes() const;
  int64_t size() const { return rows_; }

 private:
  models::Taps all_;  // tap -> host f32 [N, ...]
  int64_t rows_ = 0;
};

// Host bytes the taps of `model` would take for `images` images of shape input [1, C, H, W].
int64_t estimated_cache_bytes(const models::Model& model, const std::set<std::string>& taps, const Shape& input,
                              int64_t images);

}  // namespace retort::transfer
