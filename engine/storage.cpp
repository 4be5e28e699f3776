// Storage allocation and byte copies; host memory comes from engine/host_pool, CUDA memory from
// kernels/cuda's pooled allocator.
#include "engine/storage.h"
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include "engine/error.h"
#include "engine/host_pool.h"
#include "engine/profiler.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {
namespace {
struct Counters {
  std::atomic<size_t> current{0};
  std::atomic<size_t> peak{0};
};
Counters& counters(Device d) {
  static Counters cpu;
  static Counters gpu[16];
  return d.is_cpu() ? cpu : gpu[d.index & 15];
}
void count_alloc(Device d, size_t n) {
  auto& c = counters(d);
  size_t now = c.current.fetch_add(n) + n;
  size_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {}
}
// Every block is a whole number of 64-byte lines, and never empty.
size_t padded(size_t n) { return n == 0 ? 64 : (n + 63) / 64 * 64; }
}  // namespace

Storage::Storage(size_t n, Device dev) : nbytes(n), device(dev) {
  if (dev.is_cpu()) ptr = host_pool::allocate(padded(n));
  else ptr = cuda::device_alloc(padded(n), dev.index);
  count_alloc(dev, n);
  profiler::note_allocation(n);
}

Storage::~Storage() {
  if (device.is_cpu()) host_pool::release(ptr, padded(nbytes));
  else cuda::device_free(ptr, device.index);
  counters(device).current.fetch_sub(nbytes);
}

MemoryStats memory_stats(Device d) { return {counters(d).current.load(), counters(d).peak.load()}; }
void reset_peak_memory(Device d) { counters(d).peak.store(counters(d).current.load()); }

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  cuda::memcpy_any(dst, dst_dev.is_cuda(), src, src_dev.is_cuda(), nbytes);
}

}  // namespace retort
