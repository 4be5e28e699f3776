// Host helpers of the full-chip batch-norm kernels (declared in bn_chip.cuh): chip size from the
// SM count and each kernel's occupancy (queried once, cached), the per-channel arrival counters
// of the last-block-done merge.
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include "kernels/cuda/bn_chip.cuh"
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda::bn_chip {
namespace {

int current_device() {
  int device = 0;
  RETORT_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

int sm_count() {
  static const int count = [] {
    int n = 0;
    RETORT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, current_device()));
    return n < 1 ? 1 : n;
  }();
  return count;
}

}  // namespace

int64_t chip_blocks(const void* kernel) {
  static std::mutex mutex;
  static std::unordered_map<const void*, int> per_sm;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = per_sm.find(kernel);
  if (it == per_sm.end()) {
    int n = 0;
    RETORT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
    it = per_sm.emplace(kernel, n < 1 ? 1 : n).first;
  }
  return int64_t(sm_count()) * it->second;
}

unsigned* channel_counters(int64_t channels) {
  static std::mutex mutex;
  static unsigned* counters = nullptr;
  static int64_t capacity = 0;
  static int device = 0;
  std::lock_guard<std::mutex> lock(mutex);
  if (channels > capacity) {
    const int64_t grown = channels > 2 * capacity ? channels : 2 * capacity;
    const int64_t size = grown < 1024 ? 1024 : grown;
    const int dev = current_device();
    auto* fresh = static_cast<unsigned*>(device_alloc(size_t(size) * sizeof(unsigned), dev));
    RETORT_CUDA_CHECK(cudaMemsetAsync(fresh, 0, size_t(size) * sizeof(unsigned), stream()));
    if (counters) device_free(counters, device);  // after the launches queued before, which used it
    counters = fresh;
    capacity = size;
    device = dev;
  }
  return counters;
}

bool aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace retort::cuda::bn_chip
