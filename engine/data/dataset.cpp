// Dataset validation and DatasetView construction.
#include "engine/data/dataset.h"
#include <numeric>
#include "engine/error.h"

namespace retort::data {

void Dataset::validate() const {
  RETORT_CHECK(channels > 0 && height > 0 && width > 0, "dataset '{}': bad image shape [{}, {}, {}]", name, channels,
               height, width);
  RETORT_CHECK(images.size() == labels.size() * size_t(image_numel()),
               "dataset '{}': {} image bytes for {} labels of {}x{}x{} images (expected {})", name, images.size(),
               labels.size(), channels, height, width, labels.size() * size_t(image_numel()));
  RETORT_CHECK(num_classes > 0, "dataset '{}': num_classes must be positive, got {}", name, num_classes);
  RETORT_CHECK(class_names.empty() || int64_t(class_names.size()) == num_classes,
               "dataset '{}': {} class names for {} classes", name, class_names.size(), num_classes);
  for (size_t i = 0; i < labels.size(); ++i)
    RETORT_CHECK(labels[i] >= 0 && labels[i] < num_classes, "dataset '{}': label {} of image {} is out of range, expected < {}",
                 name, labels[i], i, num_classes);
}

DatasetView::DatasetView(std::shared_ptr<const Dataset> data) : data_(std::move(data)) {
  RETORT_CHECK(data_, "DatasetView: null dataset");
  indices_.resize(size_t(data_->size()));
  std::iota(indices_.begin(), indices_.end(), int64_t(0));
}

DatasetView::DatasetView(std::shared_ptr<const Dataset> data, std::vector<int64_t> indices)
    : data_(std::move(data)), indices_(std::move(indices)) {
  RETORT_CHECK(data_, "DatasetView: null dataset");
  for (int64_t i : indices_)
    RETORT_CHECK(i >= 0 && i < data_->size(), "DatasetView of '{}': index {} out of range [0, {})", data_->name, i,
                 data_->size());
}

DatasetView DatasetView::subset(const std::vector<int64_t>& positions) const {
  std::vector<int64_t> idx;
  idx.reserve(positions.size());
  for (int64_t p : positions) {
    RETORT_CHECK(p >= 0 && p < size(), "DatasetView::subset: position {} out of range [0, {})", p, size());
    idx.push_back(indices_[size_t(p)]);
  }
  return DatasetView(data_, std::move(idx));
}

std::vector<int64_t> DatasetView::class_counts() const {
  std::vector<int64_t> counts(size_t(data_->num_classes), 0);
  for (int64_t i : indices_) ++counts[size_t(data_->labels[size_t(i)])];
  return counts;
}

}  // namespace retort::data
