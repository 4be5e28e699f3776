// Raw device memory owned by tensors: CPU (aligned heap) or CUDA (stream-ordered pool).
#pragma once
#include <cstddef>
#include <memory>
#include "engine/device.h"

namespace retort {

struct Storage {
  void* ptr = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};
using StoragePtr = std::shared_ptr<Storage>;

struct MemoryStats {
  size_t current_bytes = 0;  // bytes held by live tensors
  size_t peak_bytes = 0;     // high-water mark since start or the last reset
};
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);

// Copies nbytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace retort
