// Fuzz target for the IDX readers (Fashion-MNIST's format, gzip or plain): the input is a file,
// read as images and as labels; it is accepted when either reader takes it.
#include <cstdlib>
#include "engine/data/idx.h"
#include "engine/error.h"
#include "fuzz/fuzz_file.h"
#include "fuzz/fuzz_targets.h"

namespace retort::fuzz {

Outcome idx_input(const uint8_t* data, size_t size) {
  const std::string path = write_input(data, size, ".idx");
  bool accepted = false;
  std::string errors;
  try {
    data::IdxImages images = data::load_idx_images(path);
    if (images.pixels.size() != size_t(images.count * images.rows * images.cols)) std::abort();
    accepted = true;
  } catch (const Error& e) {
    errors = std::string("as images: ") + e.what();
  }
  try {
    data::load_idx_labels(path, 10);
    accepted = true;
  } catch (const Error& e) {
    errors += std::string("; as labels: ") + e.what();
  }
  return accepted ? Outcome::accept() : Outcome::reject(errors);
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(idx_input)
