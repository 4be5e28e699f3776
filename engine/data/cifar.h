// CIFAR-10 / CIFAR-100 binary format readers (the "binary version" tarballs).
// CIFAR-10: data_batch_1..5.bin, test_batch.bin; records of 1 label byte + 3072 pixel bytes.
// CIFAR-100: train.bin, test.bin; records of coarse byte + fine byte + 3072 pixel bytes.
// Pixels are stored R plane, G plane, B plane of 32x32: already [C, H, W].
#pragma once
#include <string>
#include <vector>
#include "engine/data/dataset.h"

namespace retort::data {

// Loads the split from `dir` (or dir/cifar-10-batches-bin, dir/cifar-100-binary when the
// files are one level down). num_classes is 10 or 100 (CIFAR-100 uses the fine labels).
Dataset load_cifar(const std::string& dir, int num_classes, bool train);
// Appends the records of one binary file; errors name the file and the byte offset.
void append_cifar_file(const std::string& path, int num_classes, Dataset& into);

const std::vector<std::string>& cifar10_class_names();
const std::vector<std::string>& cifar100_class_names();

}  // namespace retort::data
