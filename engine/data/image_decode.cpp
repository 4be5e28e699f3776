// The one stb_image implementation unit of retort (STB_IMAGE_STATIC keeps its symbols local),
// plus HWC -> CHW conversion and bilinear resizing of decoded images.
#include "engine/data/image_decode.h"
#include <algorithm>
#include <cmath>
#include <memory>
#include "engine/data/transforms.h"
#include "engine/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace retort::data {
namespace {
// Larger images are refused before decoding: a damaged or hostile header can claim any size,
// and 64 Mpixel (e.g. 8192 x 8192) is far above any training image.
constexpr int64_t kMaxPixels = int64_t(1) << 26;
}  // namespace

void decode_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width, uint8_t* out) {
  RETORT_CHECK(channels == 1 || channels == 3, "{}: images can be decoded to 1 or 3 channels, not {}", path, channels);
  RETORT_CHECK(height > 0 && width > 0, "{}: requested image size {}x{} must be positive", path, height, width);
  int w = 0, h = 0, file_channels = 0;
  if (stbi_info(path.c_str(), &w, &h, &file_channels))
    RETORT_CHECK(int64_t(w) * h <= kMaxPixels, "{}: the image claims {}x{} pixels, more than the {} Mpixel retort decodes",
                 path, w, h, kMaxPixels >> 20);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load(path.c_str(), &w, &h, &file_channels, int(channels)),
                                                   stbi_image_free);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    fail("{}: cannot decode image ({}); expected a PNG, JPEG or BMP file", path, why ? why : "unknown reason");
  }
  const int64_t C = channels, H = h, W = w;
  if (H == height && W == width) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < H * W; ++k) out[c * H * W + k] = pixels.get()[k * C + c];
    return;
  }
  std::vector<float> plane(size_t(H * W)), resized(size_t(height * width));
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t k = 0; k < H * W; ++k) plane[size_t(k)] = float(pixels.get()[k * C + c]);
    resize_bilinear_plane(plane.data(), H, W, resized.data(), height, width);
    for (int64_t k = 0; k < height * width; ++k)
      out[c * height * width + k] = uint8_t(std::clamp(std::lround(resized[size_t(k)]), 0L, 255L));
  }
}

}  // namespace retort::data
