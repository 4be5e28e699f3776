// Input adaptation of a model to another image size and channel count (see models/input_adapter.h).
#include "models/input_adapter.h"
#include <fmt/format.h>
#include <vector>
#include "engine/autocast.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::models {

InputAdapter::InputAdapter(int64_t from_channels, int64_t from_size, int64_t to_channels, int64_t to_size,
                           data::Interpolation interpolation)
    : from_channels_(from_channels),
      from_size_(from_size),
      to_channels_(to_channels),
      to_size_(to_size),
      interpolation_(interpolation) {
  const auto known = [](int64_t c) { return c == 1 || c == 3; };
  RETORT_CHECK(known(from_channels) && known(to_channels),
               "input adapter: images of {} channels cannot feed a model of {} (grey and RGB are converted)",
               from_channels, to_channels);
  RETORT_CHECK(from_size > 0 && to_size > 0, "input adapter: sizes {} -> {} must be positive", from_size, to_size);
}

Tensor InputAdapter::resize_matrix(DType dtype, Device device) const {
  const std::string key = fmt::format("{}/{}", dtype_name(dtype), device.str());
  std::lock_guard lock(mutex_);
  if (auto it = matrices_.find(key); it != matrices_.end()) return it->second;
  std::vector<double> m(size_t(to_size_ * from_size_), 0.0);
  if (interpolation_ == data::Interpolation::nearest) {
    const std::vector<int64_t> src = data::nearest_indices(from_size_, to_size_);
    for (int64_t o = 0; o < to_size_; ++o) m[size_t(o * from_size_ + src[size_t(o)])] = 1.0;
  } else {
    const data::AxisTaps taps = data::filter_taps(from_size_, to_size_, interpolation_);
    for (int64_t o = 0; o < to_size_; ++o)
      for (int64_t k = 0; k < taps.count[size_t(o)]; ++k)
        m[size_t(o * from_size_ + taps.first[size_t(o)] + k)] = taps.weights[size_t(o * taps.stride + k)];
  }
  Tensor t = Tensor::from_vector(m, {to_size_, from_size_}, dtype, device);
  matrices_[key] = t;
  return t;
}

Tensor InputAdapter::adapt(const Tensor& x) const {
  RETORT_CHECK(x.dim() == 4 && x.size(1) == from_channels_ && x.size(2) == from_size_ && x.size(3) == from_size_,
               "input adapter ({}): input {} is not [B, {}, {}, {}]", describe(), x.str(), from_channels_, from_size_,
               from_size_);
  Tensor h = x;
  if (from_size_ != to_size_) {
    const Tensor r = resize_matrix(h.dtype(), h.device());  // [to, from]
    h = matmul(h, r.transpose(0, 1));                        // the width:  [B, C, from, to]
    h = matmul(r, h);                                        // the height: [B, C, to, to]
  }
  if (from_channels_ == 1 && to_channels_ == 3) h = concat({h, h, h}, 1);
  if (from_channels_ == 3 && to_channels_ == 1) {
    const Tensor w = Tensor::from_vector({0.299, 0.587, 0.114}, {1, 3, 1, 1}, h.dtype(), h.device());
    h = sum(mul(h, w), {1}, /*keepdim=*/true);
  }
  return h;
}

Shape InputAdapter::adapt(const Shape& in) const {
  RETORT_CHECK(in.size() == 4 && in[1] == from_channels_ && in[2] == from_size_ && in[3] == from_size_,
               "input adapter ({}): input {} is not [B, {}, {}, {}]", describe(), shape_str(in), from_channels_,
               from_size_, from_size_);
  return {in[0], to_channels_, to_size_, to_size_};
}

std::string InputAdapter::describe() const {
  std::string what;
  if (from_size_ != to_size_) what = fmt::format("{} resize", data::to_string(interpolation_));
  if (from_channels_ != to_channels_)
    what += fmt::format("{}{}", what.empty() ? "" : ", ", from_channels_ == 1 ? "grey repeated to RGB" : "RGB to grey");
  return fmt::format("{}x{}x{} -> {}x{}x{} ({})", from_channels_, from_size_, from_size_, to_channels_, to_size_,
                     to_size_, what.empty() ? "unchanged" : what);
}

}  // namespace retort::models
