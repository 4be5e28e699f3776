// The dataset registry: names, one-line descriptions and normalisation statistics (for
// `retort list datasets` and recipes), and load_dataset() by name.
#pragma once
#include <string>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/data/preprocess.h"

namespace retort::data {

struct DatasetInfo {
  std::string name;         // "fashion-mnist", "cifar10", "cifar100", "folder"
  std::string description;  // one line
  int64_t num_classes = 0;  // 0: decided by the data (folder)
  int64_t channels = 0, height = 0, width = 0;  // 0: chosen by the request (folder)
  std::vector<float> mean, std;  // per-channel training-set statistics of [0, 1] pixels (empty: unknown)
  std::string default_dir;       // where it is looked for when no directory is given (empty: none)
};

const std::vector<DatasetInfo>& dataset_registry();
// The entry for `name`; an unknown name throws an error listing the known ones.
const DatasetInfo& dataset_info(const std::string& name);

struct DatasetRequest {
  std::string name;
  std::string dir;     // empty: the registry's default_dir
  bool train = true;   // false: the test split (folder: dir/test or dir/val)
  // folder only: what the model sees, and how images get there (see engine/data/preprocess.h)
  int64_t channels = 3, height = 32, width = 32;
  int64_t resize_shorter = 0;  // > 0: shorter side resized to this, then a centre crop of height x width
  Interpolation interpolation = Interpolation::bilinear;
  int64_t cache_bytes = int64_t(1) << 30;  // decoded-image cache of each split (images are streamed from disk)

  Preprocess preprocess() const { return {channels, height, width, resize_shorter, interpolation}; }
};
Dataset load_dataset(const DatasetRequest& request);

}  // namespace retort::data
