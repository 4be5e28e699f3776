// Dataset validation and DatasetView construction.
#include "engine/data/dataset.h"
#include <cstring>
#include <numeric>
#include "engine/data/image_source.h"
#include "engine/error.h"

namespace retort::data {

const uint8_t* Dataset::image(int64_t i) const {
  RETORT_CHECK(in_memory(), "dataset '{}': its images are streamed from disk, not held in memory; read image {} with "
               "copy_image", name, i);
  return images.data() + i * image_numel();
}

void Dataset::copy_image(int64_t i, uint8_t* out) const {
  RETORT_CHECK(i >= 0 && i < size(), "dataset '{}': image {} out of range [0, {})", name, i, size());
  if (source) return source->read(i, out);
  std::memcpy(out, images.data() + i * image_numel(), size_t(image_numel()));
}

void Dataset::validate() const {
  RETORT_CHECK(channels > 0 && height > 0 && width > 0, "dataset '{}': bad image shape [{}, {}, {}]", name, channels,
               height, width);
  if (source) {
    RETORT_CHECK(images.empty(), "dataset '{}': streamed from a source but also holding {} image bytes", name,
                 images.size());
    RETORT_CHECK(source->size() == size(), "dataset '{}': the image source has {} images for {} labels", name,
                 source->size(), size());
    RETORT_CHECK(source->image_bytes() == image_numel(),
                 "dataset '{}': the image source yields {}-byte images, not {}x{}x{} = {}", name, source->image_bytes(),
                 channels, height, width, image_numel());
  } else {
    RETORT_CHECK(images.size() == labels.size() * size_t(image_numel()),
                 "dataset '{}': {} image bytes for {} labels of {}x{}x{} images (expected {})", name, images.size(),
                 labels.size(), channels, height, width, labels.size() * size_t(image_numel()));
  }
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
