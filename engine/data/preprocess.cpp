// Preprocess: validation, torchvision's Resize(int) / CenterCrop arithmetic, and the
// resize-and-crop of u8 images and float batches (resampling in engine/data/resample.cpp).
#include "engine/data/preprocess.h"
#include <algorithm>
#include "engine/error.h"

namespace retort::data {
namespace {

// Channel conversion of one float image [from, h, w] -> [to, h, w] (to, from in {1, 3}).
void convert_channels(const float* in, int64_t from, int64_t plane, int64_t to, float* out) {
  if (from == to) {
    std::copy(in, in + from * plane, out);
  } else if (to == 3) {  // grey -> RGB: the plane three times, as Pillow's convert("RGB")
    for (int64_t c = 0; c < 3; ++c) std::copy(in, in + plane, out + c * plane);
  } else {  // RGB -> grey with Pillow's convert("L") weights (ITU-R 601-2 luma)
    for (int64_t k = 0; k < plane; ++k)
      out[k] = 0.299f * in[k] + 0.587f * in[plane + k] + 0.114f * in[2 * plane + k];
  }
}

}  // namespace

std::string Preprocess::describe() const {
  if (resize_shorter > 0)
    return fmt::format("resize shorter side to {} ({}), centre crop {}x{}", resize_shorter, to_string(interpolation),
                       height, width);
  return fmt::format("resize to {}x{} ({})", height, width, to_string(interpolation));
}

void Preprocess::validate() const {
  RETORT_CHECK(channels == 1 || channels == 3, "preprocess: channels must be 1 (grey) or 3 (RGB), got {}", channels);
  RETORT_CHECK(height > 0 && width > 0, "preprocess: the output size {}x{} must be positive", height, width);
  RETORT_CHECK(resize_shorter >= 0, "preprocess: resize_shorter must be >= 0 (0: resize straight to {}x{}), got {}",
               height, width, resize_shorter);
}

ImageSize shorter_side_size(int64_t h, int64_t w, int64_t shorter) {
  RETORT_CHECK(h > 0 && w > 0 && shorter > 0, "shorter_side_size: cannot resize a {}x{} image to shorter side {}", h, w,
               shorter);
  const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
  // Python's int(size * long / short): an exact product, a correctly rounded division, truncation.
  const int64_t new_long = int64_t(double(shorter * long_side) / double(short_side));
  return w <= h ? ImageSize{new_long, shorter} : ImageSize{shorter, new_long};
}

int64_t centre_crop_offset(int64_t size, int64_t crop) {
  RETORT_CHECK(crop > 0 && crop <= size, "centre_crop_offset: a crop of {} does not fit in {}", crop, size);
  const int64_t excess = size - crop, half = excess / 2;
  // excess / 2.0 is whole or ends in .5; Python's round() takes a .5 to the even neighbour.
  return (excess % 2 == 0 || half % 2 == 0) ? half : half + 1;
}

ResizeWindow preprocess_window(int64_t h, int64_t w, const Preprocess& p, const std::string& what) {
  p.validate();
  RETORT_CHECK(h > 0 && w > 0, "{}: the image is {}x{}; it needs at least one row and column", what, h, w);
  if (p.resize_shorter == 0) return {p.height, p.width, 0, 0, p.height, p.width};
  const ImageSize resized = shorter_side_size(h, w, p.resize_shorter);
  RETORT_CHECK(p.height <= resized.height && p.width <= resized.width,
               "{}: a {}x{} image resized to shorter side {} is {}x{}, smaller than the {}x{} centre crop", what, h, w,
               p.resize_shorter, resized.height, resized.width, p.height, p.width);
  return {resized.height, resized.width, centre_crop_offset(resized.height, p.height),
          centre_crop_offset(resized.width, p.width), p.height, p.width};
}

void preprocess_image(const uint8_t* chw, int64_t h, int64_t w, const Preprocess& p, uint8_t* out) {
  const ResizeWindow window = preprocess_window(h, w, p);
  for (int64_t c = 0; c < p.channels; ++c)
    resample_plane(chw + c * h * w, h, w, window, p.interpolation, out + c * p.height * p.width);
}

void preprocess(Batch& b, const Preprocess& p) {
  RETORT_CHECK(b.channels == 1 || b.channels == 3, "preprocess: batches of 1 or 3 channels, not {}", b.channels);
  if (b.batch == 0) {
    b.channels = p.channels, b.height = p.height, b.width = p.width;
    return;
  }
  const ResizeWindow window = preprocess_window(b.height, b.width, p, "preprocess of a batch");
  const int64_t in_plane = b.height * b.width, out_plane = p.height * p.width;
  std::vector<float> resized(size_t(b.channels * out_plane));
  std::vector<float> out(size_t(b.batch * p.channels * out_plane));
  for (int64_t i = 0; i < b.batch; ++i) {
    for (int64_t c = 0; c < b.channels; ++c)
      resample_plane(b.image(i) + c * in_plane, b.height, b.width, window, p.interpolation,
                     resized.data() + c * out_plane);
    convert_channels(resized.data(), b.channels, out_plane, p.channels, out.data() + i * p.channels * out_plane);
  }
  b.images = std::move(out);
  b.channels = p.channels, b.height = p.height, b.width = p.width;
}

BatchTransform preprocess_transform(const Preprocess& p) {
  p.validate();
  return {fmt::format("preprocess({})", p.describe()), [p](Batch& b, Generator&) { preprocess(b, p); }};
}

}  // namespace retort::data
