// The one stb_image implementation unit of retort (STB_IMAGE_STATIC keeps its symbols local):
// header reads through a stream, whole-file decoding, HWC -> CHW, then the Preprocess resize.
#include "engine/data/image_decode.h"
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include "engine/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO  // files are read here, then decoded from memory
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
constexpr size_t kMaxFileBytes = size_t(1) << 30;

std::vector<uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  RETORT_CHECK(in, "{}: cannot open the image: {}", path, std::strerror(errno));
  const std::streamoff size = in.tellg();
  RETORT_CHECK(size >= 0 && size_t(size) <= kMaxFileBytes, "{}: the image file is {} bytes, more than the {} MB retort "
               "reads", path, int64_t(size), kMaxFileBytes >> 20);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  RETORT_CHECK(in.read(reinterpret_cast<char*>(bytes.data()), size), "{}: reading the image failed", path);
  return bytes;
}

uint32_t big_endian32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Drops a PNG's empty IDAT chunks. They carry no data (the image is the same without them), but
// stb_image copies an empty first one from a null buffer (memcpy(NULL, p, 0): undefined
// behaviour that UBSan reports; found by fuzz/fuzz_image.cpp). Other files pass unchanged.
void drop_empty_png_data_chunks(std::vector<uint8_t>& bytes) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0) return;
  std::vector<uint8_t> kept(bytes.begin(), bytes.begin() + 8);
  size_t at = 8;
  while (at + 12 <= bytes.size()) {
    const size_t length = big_endian32(&bytes[at]);
    if (length > bytes.size() - at - 12) break;  // a cut chunk: stb_image reports it
    const bool empty_data = length == 0 && std::memcmp(&bytes[at + 4], "IDAT", 4) == 0;
    if (!empty_data) kept.insert(kept.end(), bytes.begin() + long(at), bytes.begin() + long(at + 12 + length));
    at += 12 + length;
  }
  kept.insert(kept.end(), bytes.begin() + long(at), bytes.end());
  bytes.swap(kept);
}

void check_declared_size(const std::string& path, int64_t w, int64_t h) {
  // stb_image accepts a BMP that declares zero rows and returns an empty, non-null buffer.
  RETORT_CHECK(w > 0 && h > 0, "{}: the image declares {}x{} pixels; an image needs at least one row and column",
               path, w, h);
  RETORT_CHECK(w * h <= kMaxPixels, "{}: the image claims {}x{} pixels, more than the {} Mpixel retort decodes", path,
               w, h, kMaxPixels >> 20);
}

// stb_image callbacks on an open file: a header read takes only the bytes it needs.
int stream_read(void* user, char* data, int size) {
  auto& in = *static_cast<std::ifstream*>(user);
  in.read(data, size);
  return int(in.gcount());
}
void stream_skip(void* user, int n) { static_cast<std::ifstream*>(user)->seekg(n, std::ios::cur); }
int stream_eof(void* user) { return static_cast<std::ifstream*>(user)->eof() ? 1 : 0; }

using StbPixels = std::unique_ptr<stbi_uc, void (*)(void*)>;

// The whole file decoded to `channels` interleaved (HWC) by stb_image; h, w receive its size.
StbPixels decode_pixels(const std::string& path, int64_t channels, int64_t& h, int64_t& w) {
  std::vector<uint8_t> bytes = read_whole_file(path);
  drop_empty_png_data_chunks(bytes);
  int iw = 0, ih = 0, file_channels = 0;
  if (stbi_info_from_memory(bytes.data(), int(bytes.size()), &iw, &ih, &file_channels))
    check_declared_size(path, iw, ih);
  StbPixels pixels(stbi_load_from_memory(bytes.data(), int(bytes.size()), &iw, &ih, &file_channels, int(channels)),
                   stbi_image_free);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    fail("{}: cannot decode image ({}); expected a PNG, JPEG or BMP file", path, why ? why : "unknown reason");
  }
  check_declared_size(path, iw, ih);
  h = ih, w = iw;
  return pixels;
}

void interleaved_to_planes(const uint8_t* hwc, int64_t channels, int64_t plane, uint8_t* chw) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < plane; ++k) chw[c * plane + k] = hwc[k * channels + c];
}
}  // namespace

void decode_image_file(const std::string& path, const Preprocess& p, uint8_t* out) {
  RETORT_CHECK(p.channels == 1 || p.channels == 3, "{}: images can be decoded to 1 or 3 channels, not {}", path,
               p.channels);
  RETORT_CHECK(p.height > 0 && p.width > 0, "{}: requested image size {}x{} must be positive", path, p.height, p.width);
  int64_t h = 0, w = 0;
  const StbPixels pixels = decode_pixels(path, p.channels, h, w);
  const ResizeWindow window = preprocess_window(h, w, p, path);
  if (window.resized_h == h && window.resized_w == w && window.out_h == h && window.out_w == w)
    return interleaved_to_planes(pixels.get(), p.channels, h * w, out);
  std::vector<uint8_t> planes(size_t(p.channels * h * w));
  interleaved_to_planes(pixels.get(), p.channels, h * w, planes.data());
  for (int64_t c = 0; c < p.channels; ++c)
    resample_plane(planes.data() + c * h * w, h, w, window, p.interpolation, out + c * p.height * p.width);
}

void decode_image_file(const std::string& path, int64_t channels, int64_t height, int64_t width, uint8_t* out) {
  decode_image_file(path, Preprocess{channels, height, width, 0, Interpolation::bilinear}, out);
}

ImageSize read_image_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  RETORT_CHECK(in, "{}: cannot open the image: {}", path, std::strerror(errno));
  const std::streamoff size = in.tellg();
  RETORT_CHECK(size >= 0 && size_t(size) <= kMaxFileBytes, "{}: the image file is {} bytes, more than the {} MB retort "
               "reads", path, int64_t(size), kMaxFileBytes >> 20);
  in.seekg(0);
  const stbi_io_callbacks callbacks{stream_read, stream_skip, stream_eof};
  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_callbacks(&callbacks, &in, &w, &h, &file_channels)) {
    const char* why = stbi_failure_reason();
    fail("{}: not a readable image ({}); expected a PNG, JPEG or BMP file", path, why ? why : "unknown reason");
  }
  check_declared_size(path, w, h);
  return {h, w};
}

}  // namespace retort::data

