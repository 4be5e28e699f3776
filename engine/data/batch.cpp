// Batch gathering (u8 -> f32 in [0, 1]) and the copy into tensors.
#include "engine/data/batch.h"
#include <cstring>
#include "engine/error.h"

namespace retort::data {

Tensor Batch::images_tensor(Device device) const {
  RETORT_CHECK(int64_t(images.size()) == batch * image_numel(), "Batch::images_tensor: {} floats for shape {}",
               images.size(), shape_str(shape()));
  Tensor host = Tensor::empty(shape(), DType::f32);
  if (!images.empty()) std::memcpy(host.data<float>(), images.data(), images.size() * sizeof(float));
  return host.to(device);
}

Batch Batch::slice(int64_t first, int64_t last) const {
  RETORT_CHECK(0 <= first && first <= last && last <= batch, "Batch::slice: rows [{}, {}) of a batch of {}", first, last,
               batch);
  Batch out;
  out.batch = last - first;
  out.channels = channels;
  out.height = height;
  out.width = width;
  out.index = index;
  out.whole_batch = whole_batch > 0 ? whole_batch : batch;
  const int64_t n = image_numel();
  out.images.assign(images.begin() + first * n, images.begin() + last * n);
  if (!labels.empty()) out.labels.assign(labels.begin() + first, labels.begin() + last);
  if (!positions.empty()) out.positions.assign(positions.begin() + first, positions.begin() + last);
  return out;
}

Tensor Batch::labels_tensor(Device device) const {
  RETORT_CHECK(int64_t(labels.size()) == batch, "Batch::labels_tensor: {} labels for a batch of {}", labels.size(), batch);
  Tensor host = Tensor::empty({batch}, DType::i64);
  if (!labels.empty()) std::memcpy(host.data<int64_t>(), labels.data(), labels.size() * sizeof(int64_t));
  return host.to(device);
}

Batch make_batch(const DatasetView& view, const std::vector<int64_t>& positions) {
  const Dataset& ds = view.dataset();
  Batch b;
  b.batch = int64_t(positions.size());
  b.channels = ds.channels, b.height = ds.height, b.width = ds.width;
  const int64_t n = ds.image_numel();
  b.images.resize(size_t(b.batch * n));
  b.labels.resize(size_t(b.batch));
  b.positions = positions;
  constexpr float kScale = 1.0f / 255.0f;
  std::vector<uint8_t> pixels(static_cast<size_t>(n));
  for (int64_t i = 0; i < b.batch; ++i) {
    const int64_t p = positions[size_t(i)];
    RETORT_CHECK(p >= 0 && p < view.size(), "make_batch: position {} out of range [0, {})", p, view.size());
    // in memory: read in place; streamed: copied out of the source (which may decode it)
    const uint8_t* src = ds.in_memory() ? view.image(p) : (view.copy_image(p, pixels.data()), pixels.data());
    float* dst = b.image(i);
    for (int64_t k = 0; k < n; ++k) dst[k] = float(src[k]) * kScale;
    b.labels[size_t(i)] = view.label(p);
  }
  return b;
}

}  // namespace retort::data
