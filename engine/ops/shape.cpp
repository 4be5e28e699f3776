// Shape ops: concat, stack, split, chunk and constant pad. Results are written with
// Tensor::copy_ into views of a preallocated output (copy_ runs the CPU or CUDA strided-copy
// kernel); split and chunk return views. Backward slices the gradient.
#include "engine/autocast.h"
#include <algorithm>
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort {
namespace {
// The box of `t` starting at `start` with `extent` elements per dim (a view).
Tensor box(Tensor t, const Shape& start, const Shape& extent) {
  for (size_t d = 0; d < extent.size(); ++d) t = t.slice(int64_t(d), start[d], start[d] + extent[d]);
  return t;
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs_ac, int64_t dim) {
  const std::vector<Tensor> xs = autocast::promote(xs_ac);
  RETORT_PROFILE_OP("concat");
  RETORT_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  RETORT_CHECK(first.defined(), "concat: input 0 is undefined");
  RETORT_CHECK(first.dim() > 0, "concat: inputs must have at least one dim, input 0 is {}", first.str());
  const int64_t d = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[size_t(d)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    RETORT_CHECK(x.defined(), "concat: input {} is undefined", i);
    RETORT_CHECK(x.dtype() == first.dtype() && x.device() == first.device(),
                 "concat: input {} is {} but input 0 is {} (dtype and device must match)", i, x.str(), first.str());
    bool same = x.dim() == first.dim();
    for (int64_t k = 0; same && k < x.dim(); ++k)
      same = k == d || x.shape()[size_t(k)] == first.shape()[size_t(k)];
    RETORT_CHECK(same, "concat: input {} has shape {} but input 0 has {}; only dim {} may differ", i,
                 shape_str(x.shape()), shape_str(first.shape()), d);
    out_shape[size_t(d)] += x.shape()[size_t(d)];
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  std::vector<int64_t> offsets;
  {
    NoGradGuard ng;
    int64_t off = 0;
    for (const Tensor& x : xs) {
      offsets.push_back(off);
      const int64_t n = x.shape()[size_t(d)];
      if (n > 0) out.slice(d, off, off + n).copy_(x);
      off += n;
    }
  }
  if (needs_grad(xs)) {
    std::vector<int64_t> sizes;
    for (const Tensor& x : xs) sizes.push_back(x.shape()[size_t(d)]);
    record(out, "concat", xs, [d, offsets, sizes](const Tensor& g) {
      std::vector<Tensor> grads;
      for (size_t i = 0; i < sizes.size(); ++i) grads.push_back(g.slice(d, offsets[i], offsets[i] + sizes[i]));
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs_ac, int64_t dim) {
  const std::vector<Tensor> xs = autocast::promote(xs_ac);
  RETORT_PROFILE_OP("stack");
  RETORT_CHECK(!xs.empty(), "stack: no tensors given");
  RETORT_CHECK(xs[0].defined(), "stack: input 0 is undefined");
  const int64_t nd = xs[0].dim() + 1;
  const int64_t d = dim < 0 ? dim + nd : dim;
  RETORT_CHECK(d >= 0 && d < nd, "stack: dim {} out of range for inputs {}", dim, xs[0].str());
  std::vector<Tensor> parts;
  for (size_t i = 0; i < xs.size(); ++i) {
    RETORT_CHECK(xs[i].defined(), "stack: input {} is undefined", i);
    RETORT_CHECK(xs[i].shape() == xs[0].shape(), "stack: input {} has shape {} but input 0 has {}", i,
                 shape_str(xs[i].shape()), shape_str(xs[0].shape()));
    parts.push_back(xs[i].unsqueeze(d));
  }
  return concat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  RETORT_PROFILE_OP("split", x);
  RETORT_CHECK(x.defined(), "split: undefined operand");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    RETORT_CHECK(s >= 0, "split: negative size {} in the sizes", s);
    total += s;
  }
  RETORT_CHECK(total == x.shape()[size_t(d)], "split: sizes add up to {} but dim {} of {} has {}", total, d, x.str(),
               x.shape()[size_t(d)]);
  std::vector<Tensor> parts;
  int64_t off = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.slice(d, off, off + s));
    off += s;
  }
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  RETORT_PROFILE_OP("chunk", x);
  RETORT_CHECK(x.defined(), "chunk: undefined operand");
  RETORT_CHECK(chunks > 0, "chunk: chunks must be positive, got {}", chunks);
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.shape()[size_t(d)];
  // torch.chunk: pieces of ceil(n / chunks); the last may be smaller and fewer may come back.
  const int64_t per = std::max<int64_t>(1, (n + chunks - 1) / chunks);
  std::vector<int64_t> sizes;
  for (int64_t off = 0; off < n; off += per) sizes.push_back(std::min(per, n - off));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  RETORT_PROFILE_OP("pad", x);
  RETORT_CHECK(x.defined(), "pad: undefined operand");
  RETORT_CHECK(pads.size() % 2 == 0 && int64_t(pads.size()) <= 2 * x.dim(),
               "pad: {} pad values for {}; give (left, right) pairs for at most {} trailing dims", pads.size(), x.str(),
               x.dim());
  // Per dim: output size, and the region of the input that lands in the output.
  Shape out_shape = x.shape();
  Shape src_start(size_t(x.dim()), 0), src_end = x.shape(), dst_start(size_t(x.dim()), 0);
  bool cropped = false, empty_region = false;
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    const size_t d = size_t(x.dim()) - 1 - k;
    const int64_t left = pads[2 * k], right = pads[2 * k + 1], n = x.shape()[d];
    out_shape[d] = n + left + right;
    RETORT_CHECK(out_shape[d] >= 0, "pad: pads ({}, {}) on dim {} of {} leave a negative size", left, right, d, x.str());
    src_start[d] = std::max<int64_t>(0, -left);
    src_end[d] = n - std::max<int64_t>(0, -right);
    dst_start[d] = std::max<int64_t>(0, left);
    cropped = cropped || left < 0 || right < 0;
    empty_region = empty_region || src_end[d] <= src_start[d];
  }
  Shape extent(size_t(x.dim()));
  for (size_t d = 0; d < extent.size(); ++d) extent[d] = std::max<int64_t>(0, src_end[d] - src_start[d]);
  Tensor out = Tensor::full(out_shape, value, x.dtype(), x.device());
  {
    NoGradGuard ng;
    if (!empty_region) box(out, dst_start, extent).copy_(box(x.detach(), src_start, extent));
  }
  if (needs_grad({&x})) {
    Shape in_shape = x.shape();
    record(out, "pad", {x}, [in_shape, src_start, dst_start, extent, cropped, empty_region](const Tensor& g) {
      if (!cropped) return std::vector<Tensor>{box(g, dst_start, extent)};
      Tensor gx = Tensor::zeros(in_shape, g.dtype(), g.device());
      if (!empty_region) box(gx, src_start, extent).copy_(box(g, dst_start, extent));
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace retort
