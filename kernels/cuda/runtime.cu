// CUDA runtime surface: device discovery that never crashes without a driver, a retained
// stream-ordered memory pool (cudaMallocAsync), copies, and the engine's stream.
#include <cstdio>
#include <mutex>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace retort::cuda {
namespace {
std::string g_reason;
int probe() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    g_reason = std::string("no usable CUDA driver/GPU: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0) g_reason = "no CUDA GPU visible";
  return n;
}
int cached_count() {
  static int n = probe();
  return n;
}
}  // namespace

int device_count() { return cached_count(); }
std::string unavailable_reason() {
  cached_count();
  return g_reason;
}

void set_device(int device) { RETORT_CUDA_CHECK(cudaSetDevice(device)); }

std::string device_description(int device) {
  if (device < 0 || device >= cached_count()) return "no GPU: " + g_reason;
  cudaDeviceProp prop{};
  int runtime = 0;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess || cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
    cudaGetLastError();
    return "unknown GPU";
  }
  return std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", CUDA runtime " + std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    RETORT_CHECK(cached_count() > 0, "CUDA was asked for but is not usable: {}", g_reason);
    cudaStream_t st;
    RETORT_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    // Keep freed blocks in the pool between steps instead of returning them to the driver.
    cudaMemPool_t pool;
    int dev = 0;
    RETORT_CUDA_CHECK(cudaGetDevice(&dev));
    RETORT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
    uint64_t threshold = UINT64_MAX;
    RETORT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    return st;
  }();
  return s;
}

void* device_alloc(size_t bytes, int device) {
  RETORT_CHECK(cached_count() > 0, "cannot allocate on cuda:{}: {}", device, g_reason);
  void* p = nullptr;
  cudaError_t err = cudaMallocAsync(&p, bytes, stream());
  if (err != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA out of memory allocating {} bytes on cuda:{} ({} free of {}): {}", bytes, device, free_b, total_b,
         cudaGetErrorString(err));
  }
  return p;
}

void device_free(void* ptr, int) {
  if (ptr) cudaFreeAsync(ptr, stream());
}

void memcpy_any(void* dst, bool dst_gpu, const void* src, bool src_gpu, size_t bytes) {
  cudaMemcpyKind kind = dst_gpu ? (src_gpu ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                : (src_gpu ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  RETORT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream()));
  if (!dst_gpu) RETORT_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void synchronize() {
  if (cached_count() > 0) RETORT_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace retort::cuda
