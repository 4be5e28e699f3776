// ImageCache: a thread-safe least-recently-used cache of decoded images keyed by their index,
// bounded in bytes (the pixels it holds never exceed its capacity), with hit / miss counts.
#pragma once
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace retort::data {

struct CacheStats {
  int64_t capacity_bytes = 0;       // the bound on resident_bytes
  int64_t resident_bytes = 0;       // pixel bytes held now
  int64_t peak_resident_bytes = 0;  // the most ever held at once
  int64_t hits = 0, misses = 0;     // lookups that found / did not find their image
  int64_t evictions = 0;            // images dropped to make room
};

class ImageCache {
 public:
  // capacity_bytes 0: nothing is kept (every lookup misses).
  explicit ImageCache(int64_t capacity_bytes);
  ImageCache(const ImageCache&) = delete;
  ImageCache& operator=(const ImageCache&) = delete;

  // When image `key` is cached: copies its n bytes to `out`, marks it most recently used and
  // returns true (a hit). Otherwise returns false (a miss).
  bool lookup(int64_t key, uint8_t* out, size_t n);
  // Keeps a copy of n bytes as image `key`, first evicting least recently used images until it
  // fits. An image larger than the capacity, or one already cached, is not stored.
  void insert(int64_t key, const uint8_t* pixels, size_t n);
  CacheStats stats() const;

 private:
  struct Entry {
    std::vector<uint8_t> pixels;
    std::list<int64_t>::iterator position;  // in recency_
  };
  // Evicts least recently used images until n more bytes fit; returns the last evicted
  // buffer (reused for the new image when it has the right size).
  std::vector<uint8_t> make_room(size_t n);

  mutable std::mutex mutex_;
  std::list<int64_t> recency_;  // keys, most recently used first
  std::unordered_map<int64_t, Entry> entries_;
  CacheStats stats_;
};

}  // namespace retort::data
