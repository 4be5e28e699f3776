// Fuzz target for the image decoder the folder loader uses (PNG, JPEG, BMP, ... through
// stb_image, then converted and resized): the input's first byte picks 1 (even) or 3 (odd)
// channels, the rest is an image file, decoded to 12 x 10.
#include <vector>
#include "engine/data/image_decode.h"
#include "engine/error.h"
#include "fuzz/fuzz_file.h"
#include "fuzz/fuzz_targets.h"

namespace retort::fuzz {

Outcome image_input(const uint8_t* data, size_t size) {
  if (size == 0) return Outcome::reject("empty input");
  const int64_t channels = data[0] % 2 ? 3 : 1;
  const std::string path = write_input(data + 1, size - 1, ".img");
  std::vector<uint8_t> out(size_t(channels * 12 * 10));
  try {
    data::decode_image_file(path, channels, 12, 10, out.data());
    return Outcome::accept();
  } catch (const Error& e) {
    return Outcome::reject(e.what());
  }
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(image_input)
