// Batch transforms: per-channel normalisation, padded random crop, horizontal flip, bilinear resize.
#include "engine/data/transforms.h"
#include <algorithm>
#include <cmath>
#include "engine/error.h"

namespace retort::data {

void normalize(Batch& b, const std::vector<float>& mean, const std::vector<float>& std) {
  auto per_channel = [&](const std::vector<float>& v, const char* what) {
    RETORT_CHECK(v.size() == 1 || int64_t(v.size()) == b.channels,
                 "normalize: {} has {} entries for {}-channel images (give 1 or {})", what, v.size(), b.channels,
                 b.channels);
    std::vector<float> out(size_t(b.channels));
    for (int64_t c = 0; c < b.channels; ++c) out[size_t(c)] = v.size() == 1 ? v[0] : v[size_t(c)];
    return out;
  };
  const auto m = per_channel(mean, "mean"), s = per_channel(std, "std");
  for (float x : s) RETORT_CHECK(x > 0.0f, "normalize: std must be positive, got {}", x);
  const int64_t plane = b.height * b.width;
  for (int64_t i = 0; i < b.batch; ++i)
    for (int64_t c = 0; c < b.channels; ++c) {
      float* p = b.image(i) + c * plane;
      const float mu = m[size_t(c)], inv = 1.0f / s[size_t(c)];
      for (int64_t k = 0; k < plane; ++k) p[k] = (p[k] - mu) * inv;
    }
}

void random_crop(Batch& b, int64_t pad, Generator& gen) {
  RETORT_CHECK(pad >= 0, "random_crop: padding must be >= 0, got {}", pad);
  const int64_t H = b.height, W = b.width, plane = H * W;
  std::vector<float> tmp(size_t(b.image_numel()));
  for (int64_t i = 0; i < b.batch; ++i) {
    // Window top-left in padded coordinates, in [0, 2 pad]; source = window + offset - pad.
    const int64_t dy = gen.randint(2 * pad + 1) - pad;
    const int64_t dx = gen.randint(2 * pad + 1) - pad;
    float* img = b.image(i);
    std::copy(img, img + b.image_numel(), tmp.begin());
    for (int64_t c = 0; c < b.channels; ++c) {
      const float* src = tmp.data() + c * plane;
      float* dst = img + c * plane;
      for (int64_t y = 0; y < H; ++y) {
        const int64_t sy = y + dy;
        for (int64_t x = 0; x < W; ++x) {
          const int64_t sx = x + dx;
          dst[y * W + x] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[sy * W + sx] : 0.0f;
        }
      }
    }
  }
}

void random_hflip(Batch& b, Generator& gen, double p) {
  RETORT_CHECK(p >= 0.0 && p <= 1.0, "random_hflip: probability must be in [0, 1], got {}", p);
  const int64_t W = b.width;
  for (int64_t i = 0; i < b.batch; ++i) {
    if (!(gen.uniform() < p)) continue;
    float* img = b.image(i);
    for (int64_t row = 0; row < b.channels * b.height; ++row) std::reverse(img + row * W, img + row * W + W);
  }
}

void resize_bilinear_plane(const float* src, int64_t h, int64_t w, float* dst, int64_t out_h, int64_t out_w) {
  const double sy = double(h) / double(out_h), sx = double(w) / double(out_w);
  // Horizontal taps are the same for every row: compute them once.
  std::vector<int64_t> x0(static_cast<size_t>(out_w)), x1(static_cast<size_t>(out_w));
  std::vector<float> fx(static_cast<size_t>(out_w));
  for (int64_t x = 0; x < out_w; ++x) {
    double s = std::max(0.0, (double(x) + 0.5) * sx - 0.5);
    int64_t i0 = std::min<int64_t>(int64_t(s), w - 1);
    x0[size_t(x)] = i0;
    x1[size_t(x)] = std::min<int64_t>(i0 + 1, w - 1);
    fx[size_t(x)] = float(s - double(i0));
  }
  for (int64_t y = 0; y < out_h; ++y) {
    double s = std::max(0.0, (double(y) + 0.5) * sy - 0.5);
    const int64_t y0 = std::min<int64_t>(int64_t(s), h - 1), y1 = std::min<int64_t>(y0 + 1, h - 1);
    const float fy = float(s - double(y0));
    const float* r0 = src + y0 * w;
    const float* r1 = src + y1 * w;
    for (int64_t x = 0; x < out_w; ++x) {
      const size_t k = size_t(x);
      const float top = r0[x0[k]] + (r0[x1[k]] - r0[x0[k]]) * fx[k];
      const float bot = r1[x0[k]] + (r1[x1[k]] - r1[x0[k]]) * fx[k];
      dst[y * out_w + x] = top + (bot - top) * fy;
    }
  }
}

void resize(Batch& b, int64_t out_h, int64_t out_w) {
  RETORT_CHECK(out_h > 0 && out_w > 0, "resize: output size must be positive, got {}x{}", out_h, out_w);
  if (out_h == b.height && out_w == b.width) return;
  std::vector<float> out(size_t(b.batch * b.channels * out_h * out_w));
  const int64_t in_plane = b.height * b.width, out_plane = out_h * out_w;
  for (int64_t p = 0; p < b.batch * b.channels; ++p)
    resize_bilinear_plane(b.images.data() + p * in_plane, b.height, b.width, out.data() + p * out_plane, out_h, out_w);
  b.images = std::move(out);
  b.height = out_h, b.width = out_w;
}

BatchTransform normalize_transform(std::vector<float> mean, std::vector<float> std) {
  return {"normalize", [mean = std::move(mean), std = std::move(std)](Batch& b, Generator&) { normalize(b, mean, std); }};
}
BatchTransform random_crop_transform(int64_t pad) {
  RETORT_CHECK(pad >= 0, "random_crop: padding must be >= 0, got {}", pad);
  return {fmt::format("random_crop(pad={})", pad), [pad](Batch& b, Generator& g) { random_crop(b, pad, g); }};
}
BatchTransform random_hflip_transform(double p) {
  return {fmt::format("random_hflip(p={})", p), [p](Batch& b, Generator& g) { random_hflip(b, g, p); }};
}
BatchTransform resize_transform(int64_t out_h, int64_t out_w) {
  return {fmt::format("resize({}x{})", out_h, out_w), [out_h, out_w](Batch& b, Generator&) { resize(b, out_h, out_w); }};
}

}  // namespace retort::data
