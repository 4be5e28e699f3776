// The dataset registry: names, one-line descriptions and normalisation statistics (for
// `retort list datasets` and recipes), and load_dataset() by name.
#pragma once
#include <string>
#include <vector>
#include "engine/data/dataset.h"

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
  int64_t channels = 3, height = 32, width = 32;  // folder only
};
Dataset load_dataset(const DatasetRequest& request);

}  // namespace retort::data
