// Host (CPU) memory for tensors: a cache of freed large blocks, reused when a block of the same
// size is asked for again. A training loop allocates the same shapes every step; without the
// cache each large buffer went back to the OS when freed (glibc returns big blocks with munmap)
// and every page of it was faulted in and zeroed again on the next step (bench/RESULTS.md,
// "Host memory pool"). Small blocks go straight to the C heap, which already reuses them.
#pragma once
#include <cstddef>

namespace retort::host_pool {

// Blocks smaller than this are not cached (glibc's heap serves and reuses them itself).
inline constexpr size_t kMinPooledBytes = size_t(256) << 10;

// 64-byte-aligned memory for `bytes` bytes (bytes > 0). Throws retort::Error when the host has
// none left even after the cache was emptied.
void* allocate(size_t bytes);
// Gives back a block from allocate(); `bytes` must be the value given to allocate. The block is
// cached for reuse unless the cache would then hold more than its limit, in which case it is freed.
void release(void* ptr, size_t bytes);
// Frees every cached block (live blocks are untouched).
void empty();

struct Stats {
  size_t cached_bytes = 0;   // bytes held in freed blocks awaiting reuse
  size_t cached_blocks = 0;
  size_t limit_bytes = 0;    // the most the cache holds; 0: caching is off
  size_t hits = 0;           // allocations served from the cache
  size_t misses = 0;         // pooled-size allocations that asked the C heap
};
Stats stats();

// Sets the cache's limit (bytes; 0 turns caching off) and frees cached blocks above it. The
// default is RETORT_HOST_POOL_MB megabytes when that variable is set, else 4 GiB or a quarter of
// the machine's memory, whichever is less.
void set_limit(size_t bytes);

// The limit RETORT_HOST_POOL_MB=`text` asks for, in bytes; throws retort::Error naming the
// variable when `text` is not a whole number of megabytes.
size_t parse_limit_mb(const char* text);

}  // namespace retort::host_pool
