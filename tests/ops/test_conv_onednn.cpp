// The f32 CPU convolutions through oneDNN (kernels/cpu/conv_onednn.cpp) against the plain
// reference kernels, forward and both backward passes, on random inputs over the geometries the
// models use (3x3 same, strided, 1x1 shortcut, depthwise, dilated, a ViT patch embedding) and odd
// ones; the backend switch (RETORT_CPU_CONV) and the fallback when oneDNN is not built in.
#include <random>
#include "helpers.h"
#include "kernels/conv.h"
#include "kernels/cpu/conv_onednn.h"

using namespace retort;

namespace {

struct Case {
  const char* name;
  Conv2dGeometry g;
  bool bias;
};

Conv2dGeometry geometry(int64_t n, int64_t c, int64_t hw, int64_t oc, int64_t k, int64_t stride, int64_t pad,
                        int64_t dil = 1, int64_t groups = 1) {
  Conv2dGeometry g;
  g.n = n, g.c = c, g.h = hw, g.w = hw + 1;  // a non-square image catches swapped axes
  g.oc = oc, g.kh = k, g.kw = k;
  g.stride_h = g.stride_w = stride, g.pad_h = g.pad_w = pad, g.dil_h = g.dil_w = dil, g.groups = groups;
  g.oh = (g.h + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  g.ow = (g.w + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  return g;
}

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// Largest |a - b| over the largest |b|: the sums differ only in order, so the error is relative
// to the size of the values, a few f32 ulps times the sum's length.
double scaled_error(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return err / scale;
}

struct Passes {
  std::vector<float> y, gx, gw;
};

Passes run(cpu::ConvBackend backend, const Case& c, const std::vector<float>& x, const std::vector<float>& w,
           const std::vector<float>& b, const std::vector<float>& gy) {
  const Conv2dGeometry& g = c.g;
  cpu::set_conv_backend(backend);
  Passes p{std::vector<float>(size_t(g.n * g.oc * g.oh * g.ow)), std::vector<float>(x.size()),
           std::vector<float>(w.size())};
  cpu::conv2d_forward(DType::f32, g, x.data(), w.data(), c.bias ? b.data() : nullptr, p.y.data());
  cpu::conv2d_backward_input(DType::f32, g, gy.data(), w.data(), p.gx.data());
  cpu::conv2d_backward_weight(DType::f32, g, x.data(), gy.data(), p.gw.data());
  return p;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> list = {
      {"3x3 same, resnet block", geometry(4, 16, 14, 32, 3, 1, 1), false},
      {"3x3 stride 2", geometry(3, 16, 15, 32, 3, 2, 1), false},
      {"1x1 stride 2 shortcut", geometry(2, 32, 14, 64, 1, 2, 0), false},
      {"stem, one channel, bias", geometry(5, 1, 28, 16, 3, 1, 1), true},
      {"ViT patch embedding 7x7 stride 7", geometry(3, 1, 28, 48, 7, 7, 0), true},
      {"depthwise", geometry(2, 24, 12, 24, 3, 1, 1, 1, 24), false},
      {"grouped 2, odd sizes", geometry(3, 6, 9, 10, 3, 1, 2, 1, 2), true},
      {"dilated 2", geometry(2, 8, 13, 12, 3, 1, 2, 2), false},
      {"5x5 stride 3, no padding", geometry(2, 5, 17, 7, 5, 3, 0), true},
  };
  return list;
}

struct RestoreBackend {
  cpu::ConvBackend saved = cpu::conv_backend();
  ~RestoreBackend() { cpu::set_conv_backend(saved); }
};

}  // namespace

TEST_CASE("oneDNN convolutions match the reference kernels on random inputs") {
  if (!cpu::onednn_available()) {
    MESSAGE("skipped: this retort was built without oneDNN (CMake RETORT_ONEDNN=OFF or no libdnnl-dev)");
    return;
  }
  RestoreBackend restore;
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    CAPTURE(c.name);
    const Conv2dGeometry& g = c.g;
    const auto x = random_floats(g.n * g.c * g.h * g.w, seed++);
    const auto w = random_floats(g.oc * (g.c / g.groups) * g.kh * g.kw, seed++);
    const auto b = random_floats(g.oc, seed++);
    const auto gy = random_floats(g.n * g.oc * g.oh * g.ow, seed++);
    const Passes ref = run(cpu::ConvBackend::reference, c, x, w, b, gy);
    const Passes dnn = run(cpu::ConvBackend::onednn, c, x, w, b, gy);
    // Sums of up to a few thousand f32 products in another order.
    CHECK(scaled_error(dnn.y, ref.y) < 2e-6);
    CHECK(scaled_error(dnn.gx, ref.gx) < 2e-6);
    CHECK(scaled_error(dnn.gw, ref.gw) < 2e-6);
  }
}

TEST_CASE("the conv backend follows set_conv_backend, and oneDNN declines when not built in") {
  RestoreBackend restore;
  cpu::set_conv_backend(cpu::ConvBackend::reference);
  CHECK(cpu::conv_backend() == cpu::ConvBackend::reference);
  if (cpu::onednn_available()) {
    cpu::set_conv_backend(cpu::ConvBackend::onednn);
    CHECK(cpu::conv_backend() == cpu::ConvBackend::onednn);
    return;
  }
  CHECK_THROWS_WITH_AS(cpu::set_conv_backend(cpu::ConvBackend::onednn),
                       doctest::Contains("oneDNN convolution backend is not built"), Error);
  const Case& c = cases().front();
  std::vector<float> x(size_t(c.g.n * c.g.c * c.g.h * c.g.w), 1.f), w(size_t(c.g.oc * c.g.c * 9), 1.f),
      y(size_t(c.g.n * c.g.oc * c.g.oh * c.g.ow));
  CHECK_FALSE(cpu::onednn::conv2d_forward(c.g, x.data(), w.data(), nullptr, y.data()));
}
