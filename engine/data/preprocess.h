// Preprocessing as pretrained models expect their inputs: torchvision's Resize(size,
// interpolation) + CenterCrop(crop) on PIL images (shorter side resized, aspect kept, then a
// centre crop), or a plain resize to the model's size. On decoded u8 images (bit-exact with
// Pillow, see engine/data/resample.h) and on float batches (a BatchTransform).
#pragma once
#include <cstdint>
#include <string>
#include "engine/data/resample.h"
#include "engine/data/transforms.h"

namespace retort::data {

struct Preprocess {
  int64_t channels = 3;             // 1 grey, 3 RGB
  int64_t height = 32, width = 32;  // what the model sees
  // > 0: resize so the shorter side is this (aspect kept, the longer side int(size * long / short)
  // as torchvision), then centre-crop height x width; 0: resize straight to height x width.
  int64_t resize_shorter = 0;
  Interpolation interpolation = Interpolation::bilinear;

  bool operator==(const Preprocess&) const = default;
  // "resize shorter side to 36 (bicubic), centre crop 32x32" / "resize to 32x32 (bilinear)".
  std::string describe() const;
  // Throws unless channels is 1 or 3, height and width are positive and resize_shorter >= 0.
  void validate() const;
};

struct ImageSize {
  int64_t height = 0, width = 0;
  bool operator==(const ImageSize&) const = default;
};
// torchvision's Resize(shorter) output size for an h x w image: the shorter side becomes
// `shorter`, the longer int(shorter * long / short) (the aspect ratio kept, rounded down).
ImageSize shorter_side_size(int64_t h, int64_t w, int64_t shorter);
// torchvision CenterCrop's offset of `crop` samples within `size`: int(round((size - crop) / 2.0)),
// with Python's round (halves go to the even neighbour: 1.5 -> 2, 2.5 -> 2).
int64_t centre_crop_offset(int64_t size, int64_t crop);
// The resize and crop that turn an h x w image into p's height x width. Throws, naming `what`
// (a file, say) and the sizes, when the crop does not fit inside the resized image.
ResizeWindow preprocess_window(int64_t h, int64_t w, const Preprocess& p, const std::string& what = "image");

// One decoded image u8 [p.channels, h, w] -> u8 [p.channels, p.height, p.width]: Pillow's
// Image.resize, then torchvision's CenterCrop when p.resize_shorter > 0.
void preprocess_image(const uint8_t* chw, int64_t h, int64_t w, const Preprocess& p, uint8_t* out);

// The same on a float batch (values in [0, 255] or [0, 1]; nothing rounded or clamped, so
// bicubic may overshoot slightly, as torchvision's tensor resize does). Grey batches become
// RGB by repeating the plane, RGB ones grey by Pillow's weights (0.299, 0.587, 0.114).
void preprocess(Batch& b, const Preprocess& p);
BatchTransform preprocess_transform(const Preprocess& p);

}  // namespace retort::data
