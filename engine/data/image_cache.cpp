// ImageCache: an LRU list of keys plus a key -> pixels map, both under one mutex.
#include "engine/data/image_cache.h"
#include <algorithm>
#include <cstring>
#include "engine/error.h"

namespace retort::data {

ImageCache::ImageCache(int64_t capacity_bytes) {
  RETORT_CHECK(capacity_bytes >= 0, "image cache: capacity must be >= 0 bytes (0: no cache), got {}", capacity_bytes);
  stats_.capacity_bytes = capacity_bytes;
}

bool ImageCache::lookup(int64_t key, uint8_t* out, size_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ++stats_.misses;
    return false;
  }
  RETORT_CHECK(it->second.pixels.size() == n, "image cache: image {} holds {} bytes, {} asked for", key,
               it->second.pixels.size(), n);
  std::memcpy(out, it->second.pixels.data(), n);
  recency_.splice(recency_.begin(), recency_, it->second.position);
  ++stats_.hits;
  return true;
}

std::vector<uint8_t> ImageCache::make_room(size_t n) {
  std::vector<uint8_t> freed;
  while (!recency_.empty() && stats_.resident_bytes + int64_t(n) > stats_.capacity_bytes) {
    auto it = entries_.find(recency_.back());
    stats_.resident_bytes -= int64_t(it->second.pixels.size());
    freed = std::move(it->second.pixels);
    entries_.erase(it);
    recency_.pop_back();
    ++stats_.evictions;
  }
  return freed;
}

void ImageCache::insert(int64_t key, const uint8_t* pixels, size_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (int64_t(n) > stats_.capacity_bytes || entries_.count(key)) return;
  std::vector<uint8_t> buffer = make_room(n);
  buffer.resize(n);
  std::memcpy(buffer.data(), pixels, n);
  recency_.push_front(key);
  entries_.emplace(key, Entry{std::move(buffer), recency_.begin()});
  stats_.resident_bytes += int64_t(n);
  stats_.peak_resident_bytes = std::max(stats_.peak_resident_bytes, stats_.resident_bytes);
}

CacheStats ImageCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace retort::data
