// Dataset: labelled u8 images [N, C, H, W], in host memory or streamed from an ImageSource;
// DatasetView: a dataset plus a list of indices into it (subsets and splits without copying pixels).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace retort::data {

class ImageSource;

struct Dataset {
  std::string name;                      // "fashion-mnist/train", "cifar10/test", ...
  std::vector<uint8_t> images;           // in memory: N * C * H * W bytes, contiguous, CHW per image
  std::shared_ptr<const ImageSource> source;  // streamed: where the pixels are read from (images is empty)
  std::vector<int64_t> labels;           // N labels in [0, num_classes)
  int64_t channels = 0, height = 0, width = 0;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // num_classes names

  int64_t size() const { return int64_t(labels.size()); }
  int64_t image_numel() const { return channels * height * width; }
  bool in_memory() const { return !source; }
  // Image i of an in-memory dataset (a streamed one throws: use copy_image).
  const uint8_t* image(int64_t i) const;
  // Copies image i (image_numel() bytes, CHW) to `out`, from memory or from the source
  // (which may decode it); thread-safe.
  void copy_image(int64_t i, uint8_t* out) const;
  // Checks that sizes agree and every label is in range; throws a retort::Error naming the dataset.
  void validate() const;
};

class DatasetView {
 public:
  DatasetView() = default;
  // A view of every image, in order.
  explicit DatasetView(std::shared_ptr<const Dataset> data);
  // A view of data[indices[0]], data[indices[1]], ...; indices are checked.
  DatasetView(std::shared_ptr<const Dataset> data, std::vector<int64_t> indices);

  int64_t size() const { return int64_t(indices_.size()); }
  bool empty() const { return indices_.empty(); }
  const Dataset& dataset() const { return *data_; }
  const std::shared_ptr<const Dataset>& dataset_ptr() const { return data_; }
  const std::vector<int64_t>& indices() const { return indices_; }
  int64_t index(int64_t i) const { return indices_[size_t(i)]; }  // position in the view -> dataset index
  int64_t label(int64_t i) const { return data_->labels[size_t(index(i))]; }
  const uint8_t* image(int64_t i) const { return data_->image(index(i)); }  // in-memory datasets only
  void copy_image(int64_t i, uint8_t* out) const { data_->copy_image(index(i), out); }
  // A view of this view's elements at `positions` (positions into this view).
  DatasetView subset(const std::vector<int64_t>& positions) const;
  // How many images of each class the view holds (num_classes entries).
  std::vector<int64_t> class_counts() const;

 private:
  std::shared_ptr<const Dataset> data_;
  std::vector<int64_t> indices_;
};

}  // namespace retort::data
