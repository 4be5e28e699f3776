// ReviewKD's attention-based fusion module, PyTorch's nearest resize and the hierarchical context
// loss (see transfer/reviewkd_abf.h).
#include "transfer/reviewkd_abf.h"
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace retort::transfer {

int64_t nearest_source_index(int64_t dst, int64_t in, int64_t out) {
  // ATen native/UpSample.h nearest_idx with no scale given: a float scale in / out.
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(dst) * scale)), in - 1);
}

namespace {
Tensor nearest_axis(const Tensor& x, int64_t dim, int64_t out) {
  const int64_t in = x.size(dim);
  if (in == out) return x;
  std::vector<int64_t> index(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) index[size_t(i)] = nearest_source_index(i, in, out);
  return index_select(x, dim, Tensor::from_i64(index, {out}, x.device()));
}
}  // namespace

Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) {
  RETORT_CHECK(x.dim() == 4 && h > 0 && w > 0, "reviewkd: nearest resize of {} to {}x{} needs a [B, C, H, W] map",
               x.str(), h, w);
  return nearest_axis(nearest_axis(x, 2, h), 3, w);
}

Tensor hcl_level(const Tensor& s, const Tensor& teacher) {
  RETORT_CHECK(s.dim() == 4 && s.shape() == teacher.shape(),
               "reviewkd: fused student map {} and teacher map {} must be [B, C, H, W] maps of one shape", s.str(),
               teacher.str());
  const Tensor t = teacher.detach();
  const int64_t h = s.size(2);
  Tensor loss = mse_loss(s, t, Reduction::mean);
  double weight = 1.0, total = 1.0;
  for (int64_t l : {4, 2, 1}) {
    if (l >= h) continue;  // mdistiller ReviewKD.py:18-19: no pooling to the map's own size or larger
    Tensor ps = adaptive_avg_pool2d(s, {l, l});
    Tensor pt;
    {
      NoGradGuard no_grad;
      pt = adaptive_avg_pool2d(t, {l, l});
    }
    weight /= 2.0;
    loss = add(loss, mul(mse_loss(ps, pt, Reduction::mean), weight));
    total += weight;
  }
  return mul(loss, 1.0 / total);
}

Tensor hcl_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "reviewkd: {} fused student maps but {} teacher maps", s.size(),
               t.size());
  Tensor total;
  for (size_t k = 0; k < s.size(); ++k) {
    Tensor l = hcl_level(s[k], t[k]);
    total = total.defined() ? add(total, l) : l;
  }
  return total;
}

Abf::Abf(int64_t in, int64_t mid, int64_t out, bool fuse, Generator& gen)
    : in_channels(in), mid_channels(mid), out_channels(out) {
  RETORT_CHECK(in > 0 && mid > 0 && out > 0, "reviewkd: ABF({}, {}, {}) needs positive channel counts", in, mid, out);
  conv1 = register_module("conv1", std::make_shared<nn::Sequential>());
  conv1->push_back(std::make_shared<nn::Conv2d>(in, mid, nn::Conv2dSpec{.kernel = 1, .bias = false}, gen));
  conv1->push_back(std::make_shared<nn::BatchNorm2d>(mid));
  conv2 = register_module("conv2", std::make_shared<nn::Sequential>());
  conv2->push_back(
      std::make_shared<nn::Conv2d>(mid, out, nn::Conv2dSpec{.kernel = 3, .padding = 1, .bias = false}, gen));
  conv2->push_back(std::make_shared<nn::BatchNorm2d>(out));
  if (fuse) {
    att_conv = register_module("att_conv", std::make_shared<nn::Sequential>());
    att_conv->push_back(std::make_shared<nn::Conv2d>(2 * mid, 2, nn::Conv2dSpec{.kernel = 1, .bias = true}, gen));
    att_conv->push_back(std::make_shared<SigmoidModule>());
  }
  // mdistiller ReviewKD.py:128-129: nn.init.kaiming_uniform_(conv{1,2}[0].weight, a=1)
  nn::kaiming_uniform_(conv1_conv()->weight, gen, 1.0);
  nn::kaiming_uniform_(conv2_conv()->weight, gen, 1.0);
}

std::string Abf::extra_repr() const {
  return fmt::format("in={}, mid={}, out={}, fuse={}", in_channels, mid_channels, out_channels, fuse());
}

Abf::Output Abf::forward(const Tensor& x, const Tensor& residual, std::array<int64_t, 2> out_size) {
  RETORT_CHECK(x.dim() == 4 && x.size(1) == in_channels, "reviewkd: ABF({} -> {}) got a student map {}", in_channels,
               out_channels, x.str());
  RETORT_CHECK(residual.defined() == fuse(), "reviewkd: ABF {} a deeper residual but was given {}",
               fuse() ? "needs" : "takes no", residual.defined() ? residual.str() : "none");
  Tensor u = conv1->forward(x);
  if (fuse()) {
    const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
    const Tensor r = resize_nearest(residual, h, w);
    const Tensor a = att_conv->forward(concat({u, r}, 1));  // [B, 2, H, W]
    const auto parts = split(a, {1, 1}, 1);                 // z[:, 0] and z[:, 1] as [B, 1, H, W]
    RETORT_CHECK(parts[0].size(0) == b, "reviewkd: attention map {} for a batch of {}", a.str(), b);
    u = add(mul(u, parts[0]), mul(r, parts[1]));
  }
  u = resize_nearest(u, out_size[0], out_size[1]);
  return {conv2->forward(u), u};
}

Tensor Abf::forward(const Tensor& x) {
  RETORT_CHECK(!fuse(), "reviewkd: this ABF fuses a deeper residual; call forward(x, residual, out_size)");
  return forward(x, Tensor(), {x.size(2), x.size(3)}).out;
}

}  // namespace retort::transfer
