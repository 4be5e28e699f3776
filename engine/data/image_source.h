// Where a dataset's pixels come from when they are not all in memory: ImageSource, and
// FolderImageSource, image files decoded and preprocessed on demand (by whichever thread asks,
// e.g. the DataLoader's workers) with the results kept in a bounded LRU cache.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "engine/data/image_cache.h"
#include "engine/data/preprocess.h"

namespace retort::data {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual int64_t size() const = 0;
  // Bytes read() writes per image: C * H * W of the dataset's shape.
  virtual int64_t image_bytes() const = 0;
  // Image i as u8 [C, H, W] of the dataset's shape; thread-safe.
  virtual void read(int64_t i, uint8_t* out) const = 0;
  // What image i is, for errors (e.g. its file path).
  virtual std::string describe(int64_t i) const = 0;
};

// Image files decoded and preprocessed on demand, the results kept in an LRU cache of at most
// capacity_bytes of pixels (0: no cache). Files are not checked here (load_image_folder reads
// their headers up front); a file that fails to decode throws a retort::Error naming it.
class FolderImageSource : public ImageSource {
 public:
  FolderImageSource(std::vector<std::string> files, Preprocess preprocess, int64_t capacity_bytes);

  int64_t size() const override { return int64_t(files_.size()); }
  int64_t image_bytes() const override { return preprocess_.channels * preprocess_.height * preprocess_.width; }
  void read(int64_t i, uint8_t* out) const override;
  std::string describe(int64_t i) const override;

  const std::vector<std::string>& files() const { return files_; }
  const Preprocess& preprocess() const { return preprocess_; }
  CacheStats cache_stats() const { return cache_.stats(); }

 private:
  void check_index(int64_t i) const;

  std::vector<std::string> files_;
  Preprocess preprocess_;
  mutable ImageCache cache_;
};

}  // namespace retort::data
