// Memory formats (contiguous / channels_last) of 4-D tensors: tests, conversion (autograd-aware)
// and the layout helpers the elementwise ops use to keep a channels-last layout.
#include "engine/memory_format.h"
#include "engine/autograd.h"
#include "engine/error.h"

namespace retort {
namespace {
constexpr int kNhwc[4] = {0, 2, 3, 1};  // physical order of channels_last's logical dims

bool dense_in_order(const Tensor& x, const int* order) {
  int64_t expect = 1;
  for (int k = 3; k >= 0; --k) {
    const int d = order[k];
    if (x.size(d) != 1 && x.strides()[size_t(d)] != expect) return false;
    expect *= x.size(d);
  }
  return true;
}

// x's values with f's exact strides: a view when the memory already fits, else a copy.
Tensor convert_without_history(const Tensor& x, MemoryFormat f) {
  NoGradGuard ng;
  const bool memory_fits = f == MemoryFormat::channels_last ? is_channels_last(x) : x.is_contiguous();
  if (memory_fits) return make_view(x, x.shape(), memory_format_strides(x.shape(), f), x.offset());
  if (f == MemoryFormat::contiguous) return x.contiguous();
  return x.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
}
}  // namespace

const char* memory_format_name(MemoryFormat f) {
  return f == MemoryFormat::channels_last ? "channels_last" : "contiguous";
}

Shape memory_format_strides(const Shape& s, MemoryFormat f) {
  if (f == MemoryFormat::contiguous) return contiguous_strides(s);
  RETORT_CHECK(s.size() == 4, "channels_last: needs a 4-D [N, C, H, W] shape, got {}", shape_str(s));
  const Shape nhwc = contiguous_strides({s[0], s[2], s[3], s[1]});
  return {nhwc[0], nhwc[3], nhwc[1], nhwc[2]};
}

bool is_channels_last(const Tensor& x) { return x.defined() && x.dim() == 4 && dense_in_order(x, kNhwc); }

MemoryFormat suggest_memory_format(const Tensor& x) {
  if (!is_channels_last(x)) return MemoryFormat::contiguous;
  if (!x.is_contiguous()) return MemoryFormat::channels_last;
  const Shape cl = memory_format_strides(x.shape(), MemoryFormat::channels_last);
  const bool exact_cl = x.strides() == cl && cl != contiguous_strides(x.shape());
  return exact_cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
}

Tensor to_memory_format(const Tensor& x, MemoryFormat f) {
  RETORT_CHECK(x.defined(), "to_memory_format: the input is undefined");
  RETORT_CHECK(f == MemoryFormat::contiguous || x.dim() == 4,
               "to_memory_format: channels_last needs a 4-D [N, C, H, W] tensor, got {}", x.str());
  if (x.strides() == memory_format_strides(x.shape(), f)) return x;
  Tensor out = convert_without_history(x, f);
  if (needs_grad({&x})) {
    const MemoryFormat back = suggest_memory_format(x);  // the gradient comes back in x's format
    record(out, "to_memory_format", {x}, [back](const Tensor& g) { return std::vector<Tensor>{to_memory_format(g, back)}; });
  }
  return out;
}

Tensor empty_in_format(const Shape& shape, MemoryFormat f, DType dtype, Device device) {
  if (f == MemoryFormat::contiguous) return Tensor::empty(shape, dtype, device);
  RETORT_CHECK(shape.size() == 4, "empty_in_format: channels_last needs a 4-D shape, got {}", shape_str(shape));
  Tensor nhwc = Tensor::empty({shape[0], shape[2], shape[3], shape[1]}, dtype, device);
  return make_view(nhwc, shape, memory_format_strides(shape, f), 0);
}

Tensor through_contiguous(const Tensor& x, const std::function<Tensor(const Tensor&)>& op) {
  return to_memory_format(op(to_memory_format(x, MemoryFormat::contiguous)), MemoryFormat::channels_last);
}

Layout layout_in_format(const Layout& l, MemoryFormat f) {
  if (f == MemoryFormat::contiguous) return l;
  RETORT_CHECK(l.ndim == 4, "layout_in_format: channels_last needs a 4-D layout, got {} dims", l.ndim);
  Layout out;
  out.ndim = 4;
  for (int k = 0; k < 4; ++k) {
    out.shape[k] = l.shape[kNhwc[k]];
    out.strides[k] = l.strides[kNhwc[k]];
  }
  return out;
}

}  // namespace retort
