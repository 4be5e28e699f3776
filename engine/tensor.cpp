// Tensor factories, metadata, views (with their backward), copies and host access.
#include "engine/tensor.h"
#include <atomic>
#include <numeric>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/memory_format.h"
#include "engine/ops.h"
#include "kernels/copy.h"
#include "kernels/cuda/cuda_api.h"
#include "engine/kernel_call.h"

namespace retort {
void note_host_read();  // defined with the host access below

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t d = int64_t(s.size()) - 1; d >= 0; --d) {
    st[d] = acc;
    acc *= std::max<int64_t>(s[d], 1);
  }
  return st;
}
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  RETORT_CHECK(d >= 0 && d < std::max<int64_t>(ndim, 1), "{}: dim {} out of range for a {}-d tensor", op, dim, ndim);
  return d;
}
void check_data_dtype(const Tensor& t, DType want) {
  RETORT_CHECK(t.defined(), "data(): tensor is undefined");
  RETORT_CHECK(t.dtype() == want, "data<{}>() on a {} tensor", dtype_name(want), t.str());
}

// ---------------------------------------------------------------- factories
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape) RETORT_CHECK(d >= 0, "empty: negative size in shape {}", shape_str(shape));
  RETORT_CHECK(shape.size() <= size_t(kMaxDims), "tensors have at most {} dims, got {}", kMaxDims, shape_str(shape));
  uint64_t bytes = dtype_size(dtype);
  for (auto d : shape)
    RETORT_CHECK(!__builtin_mul_overflow(bytes, uint64_t(d), &bytes) && bytes < (uint64_t(1) << 62),
                 "cannot allocate a {} tensor of shape {}: its size in bytes overflows", dtype_name(dtype),
                 shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = std::make_shared<Storage>(size_t(bytes), device);
  } catch (const Error& e) {  // out of memory: say for what
    fail("cannot allocate a {} tensor of shape {} ({} bytes) on {}: {}", dtype_name(dtype), shape_str(shape), bytes,
         device.str(), e.what());
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  std::vector<double> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0.0);
  return from_vector(v, {n}, dtype, device);
}
Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  RETORT_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}", values.size(),
               shape_str(shape));
  Tensor host = empty(shape, DType::f64);
  std::copy(values.begin(), values.end(), host.data<double>());
  return host.to(dtype).to(device);
}
Tensor Tensor::from_i64(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  RETORT_CHECK(int64_t(values.size()) == shape_numel(shape), "from_i64: {} values for shape {}", values.size(),
               shape_str(shape));
  Tensor host = empty(shape, DType::i64);
  std::copy(values.begin(), values.end(), host.data<int64_t>());
  return host.to(device);
}

// ---------------------------------------------------------------- metadata
namespace {
TensorImpl* checked(const std::shared_ptr<TensorImpl>& p) {
  RETORT_CHECK(p, "operation on an undefined tensor");
  return p.get();
}
}  // namespace
#define IMPL_CHECKED() checked(impl_)
const Shape& Tensor::shape() const { return IMPL_CHECKED()->shape; }
const Shape& Tensor::strides() const { return IMPL_CHECKED()->strides; }
int64_t Tensor::offset() const { return IMPL_CHECKED()->offset; }
int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return IMPL_CHECKED()->dtype; }
Device Tensor::device() const { return IMPL_CHECKED()->storage->device; }
const StoragePtr& Tensor::storage() const { return IMPL_CHECKED()->storage; }
bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] != 1 && strides()[d] != expect) return false;
    expect *= shape()[d];
  }
  return true;
}
std::string Tensor::str() const {
  if (!impl_) return "undefined tensor";
  return fmt::format("{}{} on {}", dtype_name(dtype()), shape_str(shape()), device().str());
}
void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->ptr) + offset() * int64_t(dtype_size(dtype()));
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// ---------------------------------------------------------------- views
namespace {
// Strides for viewing (shape, strides) as new_shape without a copy; empty when impossible.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 0);
  int64_t n = shape_numel(shape);
  if (n == 0) { out = contiguous_strides(new_shape); return true; }
  // Group old dims into contiguous chunks, then split each chunk among new dims.
  size_t oi = 0, ni = 0;
  while (oi < shape.size() || ni < new_shape.size()) {
    if (oi < shape.size() && shape[oi] == 1) { ++oi; continue; }
    if (ni < new_shape.size() && new_shape[ni] == 1) { out[ni] = 1; ++ni; continue; }
    if (oi >= shape.size() || ni >= new_shape.size()) return false;
    // chunk of old dims [oi, oe) that is contiguous in memory
    size_t oe = oi + 1, last = oi;  // last: the chunk's innermost dim of size > 1
    int64_t chunk = shape[oi];
    while (oe < shape.size() && (shape[oe] == 1 || strides[last] == strides[oe] * shape[oe])) {
      if (shape[oe] != 1) { chunk *= shape[oe]; last = oe; }
      ++oe;
    }
    // inner stride of the chunk = stride of its last non-1 dim
    int64_t inner = 1;
    for (size_t k = oe; k-- > oi;) if (shape[k] != 1) { inner = strides[k]; break; }
    int64_t covered = 1;
    size_t ns = ni;
    while (ni < new_shape.size() && covered < chunk) covered *= new_shape[ni++];
    if (covered != chunk) return false;
    int64_t acc = inner;
    for (size_t k = ni; k-- > ns;) { out[k] = acc; acc *= new_shape[k]; }
    oi = oe;
  }
  return true;
}
Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      RETORT_CHECK(infer < 0, "{}: only one -1 allowed in {}", op, shape_str(shape));
      infer = int64_t(i);
    } else known *= s[i];
  }
  if (infer >= 0) {
    RETORT_CHECK(known > 0 && numel % known == 0, "{}: cannot infer -1 in {} for {} elements", op, shape_str(shape), numel);
    s[size_t(infer)] = numel / known;
  }
  RETORT_CHECK(shape_numel(s) == numel, "{}: shape {} does not hold {} elements", op, shape_str(shape), numel);
  return s;
}
}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  Shape s = infer_shape(shape_in, numel(), "view");
  Shape st;
  RETORT_CHECK(view_strides(shape(), strides(), s, st),
               "view: a {} tensor with strides {} cannot be viewed as {} without a copy; use reshape", str(),
               shape_str(strides()), shape_str(s));
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad({this})) {
    Shape in_shape = shape();
    record(out, "view", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
  }
  return out;
}
Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape s = infer_shape(shape_in, numel(), "reshape");
  Shape st;
  if (view_strides(shape(), strides(), s, st)) return view(s);
  return contiguous().view(s);
}
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  RETORT_CHECK(int64_t(dims.size()) == dim(), "permute: {} dims given for a {} tensor", dims.size(), str());
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    RETORT_CHECK(!seen[size_t(d)], "permute: dim {} repeated", d);
    seen[size_t(d)] = true;
    s[i] = shape()[size_t(d)];
    st[i] = strides()[size_t(d)];
    inverse[size_t(d)] = int64_t(i);
  }
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad({this}))
    record(out, "permute", {*this}, [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
  return out;
}
Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> p(static_cast<size_t>(dim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[size_t(wrap_dim(a, dim(), "transpose"))], p[size_t(wrap_dim(b, dim(), "transpose"))]);
  return permute(p);
}
Tensor Tensor::slice(int64_t d_in, int64_t start, int64_t end, int64_t step) const {
  int64_t d = wrap_dim(d_in, dim(), "slice");
  int64_t n = shape()[size_t(d)];
  RETORT_CHECK(step > 0, "slice: step must be positive, got {}", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape(), st = strides();
  s[size_t(d)] = (end - start + step - 1) / step;
  st[size_t(d)] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * strides()[size_t(d)]);
  if (needs_grad({this})) {
    Shape in_shape = shape();
    record(out, "slice", {*this}, [=](const Tensor& g) {
      Tensor full = Tensor::zeros(in_shape, g.dtype(), g.device());
      Shape fs = full.strides(), ss = in_shape;
      ss[size_t(d)] = g.shape()[size_t(d)];
      fs[size_t(d)] *= step;
      make_view(full, ss, fs, start * full.strides()[size_t(d)]).copy_(g);
      return std::vector<Tensor>{full};
    });
    out.grad_fn()->backward_into = [=](Tensor& input_grad, const Tensor& g) {
      Shape fs = input_grad.strides(), ss = in_shape;  // input_grad is contiguous
      ss[size_t(d)] = g.shape()[size_t(d)];
      fs[size_t(d)] *= step;
      Tensor region = make_view(input_grad, ss, fs, input_grad.offset() + start * input_grad.strides()[size_t(d)]);
      region.copy_(add(region, g));
    };
  }
  return out;
}
Tensor Tensor::select(int64_t d, int64_t index) const {
  int64_t dd = wrap_dim(d, dim(), "select");
  int64_t n = shape()[size_t(dd)];
  if (index < 0) index += n;
  RETORT_CHECK(index >= 0 && index < n, "select: index {} out of range for dim {} of {}", index, d, str());
  return slice(dd, index, index + 1).squeeze(dd);
}
Tensor Tensor::expand(const Shape& shape_in) const {
  RETORT_CHECK(shape_in.size() >= shape().size(), "expand: cannot expand {} to fewer dims {}", str(), shape_str(shape_in));
  size_t lead = shape_in.size() - shape().size();
  Shape s(shape_in.size()), st(shape_in.size(), 0);
  for (size_t i = 0; i < shape_in.size(); ++i) {
    if (i < lead) {
      RETORT_CHECK(shape_in[i] >= 0, "expand: new leading dim must be sized, got {}", shape_str(shape_in));
      s[i] = shape_in[i];
      continue;
    }
    int64_t have = shape()[i - lead];
    int64_t want = shape_in[i] == -1 ? have : shape_in[i];
    RETORT_CHECK(have == want || have == 1, "expand: {} cannot be broadcast to {} (dim {})", str(), shape_str(shape_in), i);
    s[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, s, st, offset());
  if (needs_grad({this})) {
    Shape in_shape = shape();
    record(out, "expand", {*this}, [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
  }
  return out;
}
Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t dd = d < 0 ? d + dim() + 1 : d;
  RETORT_CHECK(dd >= 0 && dd <= dim(), "unsqueeze: dim {} out of range for {}", d, str());
  Shape s = shape();
  s.insert(s.begin() + dd, 1);
  return view(s);
}
Tensor Tensor::squeeze(int64_t d) const {
  int64_t dd = wrap_dim(d, dim(), "squeeze");
  if (shape()[size_t(dd)] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + dd);
  return view(s);
}
Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  int64_t a = wrap_dim(start, dim(), "flatten"), b = wrap_dim(end, dim(), "flatten");
  Shape s;
  for (int64_t i = 0; i < a; ++i) s.push_back(shape()[size_t(i)]);
  int64_t m = 1;
  for (int64_t i = a; i <= b; ++i) m *= shape()[size_t(i)];
  s.push_back(m);
  for (int64_t i = b + 1; i < dim(); ++i) s.push_back(shape()[size_t(i)]);
  return reshape(s);
}

// ---------------------------------------------------------------- copies
namespace {
void raw_copy(const Tensor& dst, const Tensor& src) {  // same shape, same device
  Layout dl = make_layout(dst.shape(), dst.strides()), sl = make_layout(src.shape(), src.strides());
  RETORT_KERNEL(dst.device(), strided_copy, dst.raw_data(), dst.dtype(), dl, src.raw_data(), src.dtype(), sl);
}
Tensor contiguous_copy(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  raw_copy(out, t);
  return out;
}
}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = contiguous_copy(*this, dtype());
  if (needs_grad({this})) record(out, "contiguous", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}
Tensor Tensor::clone() const {
  Tensor out = contiguous_copy(*this, dtype());
  if (needs_grad({this})) record(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}
Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  // A channels-last tensor (engine/memory_format.h) stays channels-last: cast over its NHWC view.
  if (suggest_memory_format(*this) == MemoryFormat::channels_last) return permute({0, 2, 3, 1}).to(dt).permute({0, 3, 1, 2});
  Tensor out = contiguous_copy(*this, dt);
  if (needs_grad({this})) {
    RETORT_CHECK(is_floating(dt), "to({}): a tensor that requires grad can only be cast to a floating dtype", dtype_name(dt));
    DType back = dtype();
    record(out, "cast", {*this}, [back](const Tensor& g) { return std::vector<Tensor>{g.to(back)}; });
  }
  return out;
}
Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  if (suggest_memory_format(*this) == MemoryFormat::channels_last) return permute({0, 2, 3, 1}).to(dev).permute({0, 3, 1, 2});
  if (dev.is_cpu()) note_host_read();
  Tensor src = is_contiguous() ? *this : contiguous_copy(*this, dtype());
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  copy_bytes(out.raw_data(), dev, src.raw_data(), device(), nbytes());
  if (needs_grad({this})) {
    Device back = device();
    record(out, "to_device", {*this}, [back](const Tensor& g) { return std::vector<Tensor>{g.to(back)}; });
  }
  return out;
}
Tensor& Tensor::copy_(const Tensor& src_in) {
  Tensor src = src_in.detach();
  if (src.device() != device()) src = src.to(device());  // a host read when this is on the host
  if (src.shape() != shape()) src = src.expand(shape());
  raw_copy(*this, src);
  return *this;
}
Tensor& Tensor::fill_(double value) {
  if (is_contiguous()) {
    RETORT_KERNEL(device(), fill, raw_data(), dtype(), numel(), value);
  } else {
    copy_(Tensor::full({}, value, dtype(), device()));
  }
  return *this;
}

Tensor& Tensor::add_(double value) {
  if (is_contiguous()) {
    RETORT_KERNEL(device(), add_scalar_in_place, raw_data(), dtype(), numel(), value);
  } else {
    copy_(add(*this, value));
  }
  return *this;
}

// ---------------------------------------------------------------- host access
namespace {
std::atomic<int64_t> g_host_reads{0};
}  // namespace
void note_host_read() { g_host_reads.fetch_add(1, std::memory_order_relaxed); }
int64_t host_read_count() { return g_host_reads.load(std::memory_order_relaxed); }

std::vector<double> Tensor::to_vector() const {
  if (device().is_cpu()) note_host_read();  // from a device, to(Device::cpu()) counts it
  Tensor h = detach().to(Device::cpu()).to(DType::f64).contiguous();
  const double* p = h.data<double>();
  return std::vector<double>(p, p + h.numel());
}
std::vector<int64_t> Tensor::to_i64_vector() const {
  if (device().is_cpu()) note_host_read();
  Tensor h = detach().to(Device::cpu()).to(DType::i64).contiguous();
  const int64_t* p = h.data<int64_t>();
  return std::vector<int64_t>(p, p + h.numel());
}
double Tensor::item() const {
  RETORT_CHECK(numel() == 1, "item(): tensor {} has {} elements, not 1", str(), numel());
  return to_vector()[0];
}

// ---------------------------------------------------------------- autograd accessors
bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
Tensor& Tensor::requires_grad_(bool v) {
  RETORT_CHECK(!v || is_floating(dtype()), "requires_grad on a {} tensor: only floating tensors have gradients", str());
  IMPL_CHECKED()->requires_grad = v;
  return *this;
}
Tensor Tensor::grad() const { return IMPL_CHECKED()->grad; }
void Tensor::set_grad(const Tensor& g) { IMPL_CHECKED()->grad = g; }
void Tensor::zero_grad() { IMPL_CHECKED()->grad = Tensor(); }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return IMPL_CHECKED()->grad_fn; }
bool Tensor::is_leaf() const { return !grad_fn(); }

}  // namespace retort
