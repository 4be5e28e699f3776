// IDX files (the MNIST / Fashion-MNIST format), gzip or plain: generic image and label
// readers, and Fashion-MNIST on top of them.
#pragma once
#include <string>
#include <vector>
#include "engine/data/dataset.h"

namespace retort::data {

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols
};

// An IDX u8 3-d file (magic 0x00000803): [count, rows, cols].
IdxImages load_idx_images(const std::string& path);
// An IDX u8 1-d file (magic 0x00000801); every label must be < num_classes.
std::vector<int64_t> load_idx_labels(const std::string& path, int64_t num_classes);
// Images + labels as a one-channel Dataset; the label count must match the image count.
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int64_t num_classes,
                         std::string name, std::vector<std::string> class_names = {});

// Fashion-MNIST from dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]: 60000 train or
// 10000 test images of 1x28x28, 10 classes.
Dataset load_fashion_mnist(const std::string& dir, bool train);
const std::vector<std::string>& fashion_mnist_class_names();
inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

}  // namespace retort::data
