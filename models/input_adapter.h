// A model fed images of another size or channel count than it was built for: a teacher
// pretrained on 224x224 RGB distilling into a student on 32x32 grey data sees the batch
// resized (Pillow's antialiased filters, engine/data/resample.h, applied as two matrix products
// so it runs on any device) and its channels repeated (grey -> RGB) or mixed (RGB -> grey, by
// Pillow's weights 0.299, 0.587, 0.114). Set on a model with Model::set_input_adapter.
#pragma once
#include <map>
#include <mutex>
#include <string>
#include "engine/data/resample.h"
#include "engine/tensor.h"

namespace retort::models {

class InputAdapter {
 public:
  // Batches of from_channels x from_size x from_size become to_channels x to_size x to_size.
  InputAdapter(int64_t from_channels, int64_t from_size, int64_t to_channels, int64_t to_size,
               data::Interpolation interpolation);
  Tensor adapt(const Tensor& x) const;      // [B, from_channels, from, from] -> [B, to_channels, to, to]
  Shape adapt(const Shape& input) const;    // the same on shapes (tap_info)
  // "1x32x32 -> 3x224x224 (bicubic resize, grey repeated to RGB)"
  std::string describe() const;

 private:
  Tensor resize_matrix(DType dtype, Device device) const;  // [to, from], cached per device and dtype

  int64_t from_channels_, from_size_, to_channels_, to_size_;
  data::Interpolation interpolation_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, Tensor> matrices_;
};

}  // namespace retort::models
