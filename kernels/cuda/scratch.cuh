// Scratch memory for a kernel's host code: a block from the engine's stream-ordered pool
// (device_alloc, the pool that backs tensors; .cu files cannot include engine/tensor.h), on the
// current device, given back when it goes out of scope. The free is stream-ordered too, so the
// launches queued before it still read the memory; an exception between the two frees it.
#pragma once
#include <cstddef>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda {

class Scratch {
 public:
  explicit Scratch(size_t bytes) {
    if (bytes == 0) return;
    RETORT_CUDA_CHECK(cudaGetDevice(&device_));
    ptr_ = device_alloc(bytes, device_);
  }
  ~Scratch() {
    if (ptr_) device_free(ptr_, device_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* data() const { return ptr_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  int device_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace retort::cuda
