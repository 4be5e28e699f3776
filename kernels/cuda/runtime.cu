// CUDA runtime surface: device discovery that never crashes without a driver, the one GPU this
// process is bound to (kernels/cuda/device_binding.h), a retained stream-ordered memory pool
// (cudaMallocAsync), copies, the engine's stream, and the record through which kernels report
// bad input (raised at the next synchronisation).
#include <atomic>
#include <cstdio>
#include <mutex>
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/device_binding.h"

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

namespace {
std::mutex g_binding_mutex;
DeviceBinding g_binding;             // guarded by g_binding_mutex
std::atomic<int> g_bound{-1};        // g_binding.bound(), read on every launch without the lock
thread_local int t_current = -1;  // the device this host thread made current

// Makes the bound device current on the calling thread (cudaSetDevice is per thread).
void make_current_on_this_thread(int device) {
  if (t_current == device) return;
  RETORT_CUDA_CHECK(cudaSetDevice(device));
  t_current = device;
}
int bound_device() {
  if (const int b = g_bound.load(std::memory_order_acquire); b >= 0) return b;
  std::lock_guard<std::mutex> lock(g_binding_mutex);
  if (g_binding.bound() < 0) g_binding.bind(0);  // CUDA work before any device was named: cuda:0
  g_bound.store(g_binding.bound(), std::memory_order_release);
  return g_binding.bound();
}
}  // namespace

void use_device(int device) {
  if (g_bound.load(std::memory_order_acquire) == device) return make_current_on_this_thread(device);
  RETORT_REQUIRE(cached_count() > 0, "cuda:", device, " was asked for, but CUDA is not usable here: ", g_reason);
  RETORT_REQUIRE(device < cached_count(), "cuda:", device, " does not exist: ", cached_count(), " GPU(s) visible");
  {
    std::lock_guard<std::mutex> lock(g_binding_mutex);
    g_binding.bind(device);
    g_bound.store(device, std::memory_order_release);
  }
  make_current_on_this_thread(device);
}

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
  RETORT_REQUIRE(cached_count() > 0, "CUDA was asked for but is not usable: ", g_reason);
  make_current_on_this_thread(bound_device());
  static cudaStream_t s = [] {
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
  RETORT_REQUIRE(cached_count() > 0, "cannot allocate on cuda:", device, ": ", g_reason);
  use_device(device);
  void* p = nullptr;
  cudaError_t err = cudaMallocAsync(&p, bytes, stream());
  if (err != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    raise("CUDA out of memory allocating ", bytes, " bytes on cuda:", device, " (", free_b, " free of ", total_b,
          "): ", cudaGetErrorString(err));
  }
  return p;
}

void device_free(void* ptr, int) {
  if (ptr) cudaFreeAsync(ptr, stream());
}

void memcpy_any(void* dst, bool dst_gpu, const void* src, bool src_gpu, size_t bytes) {
  RETORT_REQUIRE(!capturing() || (dst_gpu && src_gpu), "CUDA graph: a copy between host and device (", bytes,
                 " bytes) cannot be captured");
  cudaMemcpyKind kind = dst_gpu ? (src_gpu ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                : (src_gpu ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  RETORT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream()));
  if (!dst_gpu) {
    RETORT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    raise_pending_device_error();
  }
}

void synchronize() {
  if (cached_count() == 0) return;
  RETORT_REQUIRE(!capturing(), "CUDA graph: a synchronisation cannot be captured");
  RETORT_CUDA_CHECK(cudaStreamSynchronize(stream()));
  raise_pending_device_error();
}

namespace {
DeviceErrorRecord* g_error_host = nullptr;    // mapped, pinned host memory
DeviceErrorRecord* g_error_device = nullptr;  // the same record as kernels address it
std::once_flag g_error_once;

const char* op_name(int op) {
  switch (DeviceErrorOp(op)) {
    case DeviceErrorOp::index_select: return "index_select";
    case DeviceErrorOp::index_add: return "index_add";
    case DeviceErrorOp::gather: return "gather";
    case DeviceErrorOp::scatter_add: return "scatter_add";
    case DeviceErrorOp::none: break;
  }
  return "a CUDA kernel";
}
}  // namespace

DeviceErrorRecord* device_error_record() {
  std::call_once(g_error_once, [] {
    stream();  // binds the device first
    void* host = nullptr;
    RETORT_CUDA_CHECK(cudaHostAlloc(&host, sizeof(DeviceErrorRecord), cudaHostAllocMapped));
    g_error_host = static_cast<DeviceErrorRecord*>(host);
    *g_error_host = DeviceErrorRecord{0, 0, 0, 0};
    void* dev = nullptr;
    RETORT_CUDA_CHECK(cudaHostGetDevicePointer(&dev, host, 0));
    g_error_device = static_cast<DeviceErrorRecord*>(dev);
  });
  return g_error_device;
}

void raise_pending_device_error() {
  if (!g_error_host) return;
  volatile DeviceErrorRecord* rec = g_error_host;
  if (rec->flag == 0) return;
  const int op = rec->op;
  const long long index = rec->index, size = rec->size;
  rec->flag = 0;  // reported once; the context stays usable
  raise(op_name(op), ": index ", index, " is out of range for a dim of size ", size,
        " (found on the GPU; the results of the work since the last synchronisation are void)");
}

}  // namespace retort::cuda
