// Image file decoding (PNG, JPEG, BMP via stb_image) into u8 [C, H, W] at a requested
// channel count, resized (and centre-cropped) by a Preprocess; and a cheap header read that
// checks a file is a readable image without decoding its pixels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "engine/data/preprocess.h"

namespace retort::data {

// Decodes `path`, converts to p.channels (1 = grey, 3 = RGB; stb_image's conversion) and
// resizes / crops it as `p` says (preprocess_image). Writes p.channels * p.height * p.width
// bytes (CHW) to `out`. Throws a retort::Error naming the file when it cannot be decoded or the
// crop does not fit.
void decode_image_file(const std::string& path, const Preprocess& p, uint8_t* out);
// The same with a plain bilinear resize to height x width.
void decode_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width, uint8_t* out);

// The size an image file declares, from its header alone (no pixels decoded). Throws a
// retort::Error naming the file when it cannot be opened, is not a PNG, JPEG or BMP header
// stb_image reads, or is larger than retort decodes.
ImageSize read_image_size(const std::string& path);

}  // namespace retort::data
