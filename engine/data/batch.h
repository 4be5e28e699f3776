// Batch: float images [B, C, H, W] and int64 labels [B] on the host, as the loader yields
// them, and their conversion to retort::Tensor on a device.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/device.h"
#include "engine/tensor.h"

namespace retort::data {

struct Batch {
  std::vector<float> images;    // B * C * H * W, contiguous
  std::vector<int64_t> labels;  // B
  int64_t batch = 0, channels = 0, height = 0, width = 0;
  int64_t index = -1;  // batch index within its epoch (set by the loader)
  std::vector<int64_t> positions;  // each image's position in the view it came from
  int64_t whole_batch = 0;  // a slice's: the rows of the batch it was cut from (0: not a slice)

  int64_t size() const { return batch; }
  int64_t image_numel() const { return channels * height * width; }
  float* image(int64_t i) { return images.data() + i * image_numel(); }
  const float* image(int64_t i) const { return images.data() + i * image_numel(); }
  Shape shape() const { return {batch, channels, height, width}; }

  Tensor images_tensor(Device device = Device::cpu()) const;  // f32 [B, C, H, W]
  Tensor labels_tensor(Device device = Device::cpu()) const;  // i64 [B]
  // Rows [first, last) as a batch of their own (a data-parallel rank's slice).
  Batch slice(int64_t first, int64_t last) const;
  std::pair<Tensor, Tensor> to_tensors(Device device = Device::cpu()) const {
    return {images_tensor(device), labels_tensor(device)};
  }
};

// Gathers the view's images at `positions` (positions into the view) into a float batch,
// pixels scaled from u8 to [0, 1].
Batch make_batch(const DatasetView& view, const std::vector<int64_t>& positions);

}  // namespace retort::data
