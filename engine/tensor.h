// Tensor: a strided view (shape, strides, offset) onto shared Storage, plus autograd state.
// Views (reshape, permute, transpose, slice, expand, ...) never copy; contiguous() does.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>
#include "engine/device.h"
#include "core/dtype.h"
#include "engine/storage.h"

namespace retort {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor arange(int64_t n, DType dtype = DType::i64, Device device = Device::cpu());
  // Host data copied in; values are converted to dtype.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                            Device device = Device::cpu());
  static Tensor from_i64(const std::vector<int64_t>& values, const Shape& shape, Device device = Device::cpu());

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  const StoragePtr& storage() const;
  std::string str() const;  // "f32[2, 3] on cpu"

  // Pointer to the first element (storage + offset). data<T>() checks T against dtype().
  void* raw_data() const;
  template <typename T> T* data() const;

  // ---- views (autograd-aware; no copies)
  Tensor reshape(const Shape& shape) const;  // view when possible, else contiguous copy
  Tensor view(const Shape& shape) const;     // requires a compatible layout
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // slice + squeeze
  Tensor expand(const Shape& shape) const;          // broadcast, -1 keeps a size
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor contiguous() const;

  // ---- copies and conversions (autograd-aware); to() keeps a channels-last tensor channels-last
  // (engine/memory_format.h), other results are contiguous.
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;
  Tensor detach() const;  // shares storage, no history

  // ---- in-place (not recorded by autograd; for optimizers and initialisation)
  Tensor& copy_(const Tensor& src);  // src broadcast to this shape, any device/dtype
  Tensor& fill_(double value);
  // this += value, in place, where the data lives (no host value enters the device's memory but
  // as the kernel's argument; computed in double, rounded once): a device counter's step.
  Tensor& add_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ---- host access
  double item() const;                      // one-element tensor to double
  std::vector<double> to_vector() const;    // all elements, row-major, as double
  std::vector<int64_t> to_i64_vector() const;

  // ---- autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);
  Tensor grad() const;           // undefined until a backward reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();              // drops the gradient
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const;
  void backward(const Tensor& grad_output = Tensor()) const;  // scalar: grad defaults to 1

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  StoragePtr storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

// Makes a tensor sharing `base`'s storage with a new layout (no autograd).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

// Normalises a possibly negative dim against ndim; names `op` in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

void check_data_dtype(const Tensor& t, DType want);

// Host reads: every time a value goes from a tensor to the host (item(), to_vector(),
// to_i64_vector(), to(Device::cpu()) or copy_ into a host tensor from a device). On CUDA each
// is a device->host synchronisation; on the CPU the same calls are counted, so a test here
// counts the synchronisations a step would make on a GPU. Process-wide, monotonic.
int64_t host_read_count();

template <typename T>
T* Tensor::data() const {
  check_data_dtype(*this, dtype_of<T>::value);
  return static_cast<T*>(raw_data());
}

}  // namespace retort
