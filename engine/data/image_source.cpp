// FolderImageSource: a cache lookup, else a decode (outside the cache's lock, so threads decode
// in parallel) whose result is offered to the cache.
#include "engine/data/image_source.h"
#include "engine/data/image_decode.h"
#include "engine/error.h"

namespace retort::data {

FolderImageSource::FolderImageSource(std::vector<std::string> files, Preprocess preprocess, int64_t capacity_bytes)
    : files_(std::move(files)), preprocess_(preprocess), cache_(capacity_bytes) {
  preprocess_.validate();
}

void FolderImageSource::check_index(int64_t i) const {
  RETORT_CHECK(i >= 0 && i < size(), "image folder source: image {} out of range [0, {})", i, size());
}

void FolderImageSource::read(int64_t i, uint8_t* out) const {
  check_index(i);
  const size_t n = size_t(image_bytes());
  if (cache_.lookup(i, out, n)) return;
  decode_image_file(files_[size_t(i)], preprocess_, out);
  cache_.insert(i, out, n);
}

std::string FolderImageSource::describe(int64_t i) const {
  check_index(i);
  return files_[size_t(i)];
}

}  // namespace retort::data
