// The host memory pool: freed blocks of at least kMinPooledBytes are kept by size (rounded up to
// 4 KiB) and handed out again for the same size; the least recently freed are let go first when
// the cache passes its limit.
#include "engine/host_pool.h"
#include <cerrno>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>
#include "engine/error.h"

namespace retort::host_pool {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kGranule = 4096;

size_t rounded(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }

size_t default_limit() {
  if (const char* env = std::getenv("RETORT_HOST_POOL_MB"); env && *env) return parse_limit_mb(env);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const size_t quarter = pages > 0 && page > 0 ? size_t(pages) * size_t(page) / 4 : 0;
  const size_t four_gib = size_t(4) << 30;
  return quarter > 0 && quarter < four_gib ? quarter : four_gib;
}

// aligned_alloc wants a size that is a multiple of the alignment.
void* heap_alloc(size_t bytes) { return std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment); }

class Pool {
 public:
  Pool() : limit_(default_limit()) {}

  void* allocate(size_t bytes) {
    const size_t size = rounded(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = by_size_.find(size); it != by_size_.end()) {
        void* ptr = it->second->ptr;
        cached_bytes_ -= size;
        lru_.erase(it->second);
        by_size_.erase(it);
        ++hits_;
        return ptr;
      }
      ++misses_;
    }
    void* ptr = heap_alloc(size);
    if (!ptr) {  // the cache may be what filled the memory: give it back and try once more
      empty();
      ptr = heap_alloc(size);
    }
    RETORT_CHECK(ptr, "out of host memory allocating {} bytes", size);
    return ptr;
  }

  void release(void* ptr, size_t bytes) {
    const size_t size = rounded(bytes);
    std::unique_lock<std::mutex> lock(mutex_);
    if (size > limit_) {
      lock.unlock();
      std::free(ptr);
      return;
    }
    lru_.push_back({ptr, size, {}});
    lru_.back().entry = by_size_.emplace(size, std::prev(lru_.end()));
    cached_bytes_ += size;
    trim_to(limit_);
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    trim_to(0);
  }

  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    trim_to(limit_);
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_bytes_, lru_.size(), limit_, hits_, misses_};
  }

 private:
  struct Block;
  using BySize = std::multimap<size_t, std::list<Block>::iterator>;
  struct Block {
    void* ptr;
    size_t size;
    BySize::iterator entry;  // this block's entry in by_size_
  };

  // Frees the least recently released blocks until at most `bytes` stay cached. Holds mutex_.
  void trim_to(size_t bytes) {
    while (cached_bytes_ > bytes) {
      const Block& oldest = lru_.front();
      by_size_.erase(oldest.entry);
      cached_bytes_ -= oldest.size;
      std::free(oldest.ptr);
      lru_.pop_front();
    }
  }

  std::mutex mutex_;
  std::list<Block> lru_;  // cached blocks, least recently released first
  BySize by_size_;  // size -> a cached block of that size
  size_t cached_bytes_ = 0;
  size_t limit_;
  size_t hits_ = 0, misses_ = 0;
};

// Never destroyed: tensors held by other static objects may be freed after main returns.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void* allocate(size_t bytes) {
  if (rounded(bytes) < kMinPooledBytes) {
    void* ptr = heap_alloc(bytes);
    RETORT_CHECK(ptr, "out of host memory allocating {} bytes", bytes);
    return ptr;
  }
  return pool().allocate(bytes);
}

void release(void* ptr, size_t bytes) {
  if (rounded(bytes) < kMinPooledBytes) std::free(ptr);
  else pool().release(ptr, bytes);
}

size_t parse_limit_mb(const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long mb = std::strtoull(text, &end, 10);
  RETORT_CHECK(end != text && *end == '\0' && text[0] != '-' && errno == 0 && mb < (1ull << 40),
               "RETORT_HOST_POOL_MB must be a whole number of megabytes (0: no host memory cache), got '{}'", text);
  return size_t(mb) << 20;
}

void empty() { pool().empty(); }
Stats stats() { return pool().stats(); }
void set_limit(size_t bytes) { pool().set_limit(bytes); }

}  // namespace retort::host_pool
