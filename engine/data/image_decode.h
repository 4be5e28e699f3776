// Image file decoding (PNG, JPEG, BMP via stb_image) into u8 [C, H, W] at a requested
// channel count and size (bilinear resize).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace retort::data {

// Decodes `path`, converts to `channels` (1 = grey, 3 = RGB) and resizes to height x width.
// Writes channels * height * width bytes (CHW) to `out`. Throws a retort::Error naming the
// file when it cannot be decoded.
void decode_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width, uint8_t* out);

}  // namespace retort::data
