// Pillow-style resampling: filter taps (Resample.c precompute_coeffs), the nearest lookup
// (Geometry.c ImagingScaleAffine), and the two separable passes, in Pillow's fixed point for
// u8 planes and in double for float planes. Only the kept window of the output is computed.
#include "engine/data/resample.h"
#include <algorithm>
#include <cmath>
#include "engine/error.h"

namespace retort::data {
namespace {

double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys' cubic convolution kernel with a = -0.5 (Pillow's bicubic_filter, written as Pillow does).
double keys_cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// How the two pixel types are combined: u8 as Pillow's 8-bit path (weights rounded to 22
// fraction bits, the sum rounded half up and clipped to [0, 255]); float in double, as is.
template <class T>
struct Arithmetic;

template <>
struct Arithmetic<uint8_t> {
  using Weight = int32_t;
  static constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS
  static Weight weight(double w) {
    const double scaled = w * double(1 << kPrecisionBits);
    return Weight(w < 0 ? -0.5 + scaled : 0.5 + scaled);  // truncation toward zero, as Pillow's (int) cast
  }
  static uint8_t combine(const uint8_t* p, int64_t step, const Weight* k, int64_t n) {
    int64_t sum = int64_t(1) << (kPrecisionBits - 1);
    for (int64_t j = 0; j < n; ++j) sum += int64_t(p[j * step]) * k[j];
    return uint8_t(std::clamp<int64_t>(sum >> kPrecisionBits, 0, 255));
  }
};

template <>
struct Arithmetic<float> {
  using Weight = double;
  static Weight weight(double w) { return w; }
  static float combine(const float* p, int64_t step, const Weight* k, int64_t n) {
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += double(p[j * step]) * k[j];
    return float(sum);
  }
};

// The taps of outputs [begin, begin + n) of `all`, with weights converted to W.
template <class W>
struct WindowTaps {
  std::vector<int64_t> first, count;
  std::vector<W> weights;
  int64_t stride = 0;
  const W* weights_of(int64_t i) const { return weights.data() + i * stride; }
};

template <class T>
WindowTaps<typename Arithmetic<T>::Weight> window_taps(const AxisTaps& all, int64_t begin, int64_t n) {
  WindowTaps<typename Arithmetic<T>::Weight> taps;
  taps.stride = all.stride;
  taps.first.assign(all.first.begin() + begin, all.first.begin() + begin + n);
  taps.count.assign(all.count.begin() + begin, all.count.begin() + begin + n);
  taps.weights.reserve(size_t(n * all.stride));
  for (int64_t k = begin * all.stride; k < (begin + n) * all.stride; ++k)
    taps.weights.push_back(Arithmetic<T>::weight(all.weights[size_t(k)]));
  return taps;
}

// Horizontal pass over the input rows the kept output rows read, then the vertical pass.
template <class T>
void resample_filtered(const T* src, int64_t w, const ResizeWindow& win, const AxisTaps& x_taps, const AxisTaps& y_taps,
                       T* dst) {
  using A = Arithmetic<T>;
  const auto cols = window_taps<T>(x_taps, win.left, win.out_w);
  const auto rows = window_taps<T>(y_taps, win.top, win.out_h);
  const int64_t row_begin = rows.first.front();
  int64_t row_end = row_begin;
  for (int64_t y = 0; y < win.out_h; ++y) row_end = std::max(row_end, rows.first[size_t(y)] + rows.count[size_t(y)]);

  const int64_t ow = win.out_w;
  std::vector<T> mid(size_t((row_end - row_begin) * ow));
  for (int64_t y = row_begin; y < row_end; ++y)
    for (int64_t x = 0; x < ow; ++x)
      mid[size_t((y - row_begin) * ow + x)] =
          A::combine(src + y * w + cols.first[size_t(x)], 1, cols.weights_of(x), cols.count[size_t(x)]);
  for (int64_t y = 0; y < win.out_h; ++y) {
    const T* top = mid.data() + (rows.first[size_t(y)] - row_begin) * ow;
    for (int64_t x = 0; x < ow; ++x)
      dst[y * ow + x] = A::combine(top + x, ow, rows.weights_of(y), rows.count[size_t(y)]);
  }
}

template <class T>
void resample_nearest(const T* src, int64_t h, int64_t w, const ResizeWindow& win, T* dst) {
  const std::vector<int64_t> xs = nearest_indices(w, win.resized_w), ys = nearest_indices(h, win.resized_h);
  for (int64_t y = 0; y < win.out_h; ++y) {
    const T* row = src + ys[size_t(win.top + y)] * w;
    for (int64_t x = 0; x < win.out_w; ++x) dst[y * win.out_w + x] = row[xs[size_t(win.left + x)]];
  }
}

void check_window(int64_t h, int64_t w, const ResizeWindow& win) {
  RETORT_CHECK(h > 0 && w > 0, "resample: the input plane is {}x{}; it needs at least one row and column", h, w);
  RETORT_CHECK(win.resized_h > 0 && win.resized_w > 0, "resample: cannot resize {}x{} to {}x{}", h, w, win.resized_h,
               win.resized_w);
  RETORT_CHECK(win.out_h > 0 && win.out_w > 0 && win.top >= 0 && win.left >= 0 && win.top + win.out_h <= win.resized_h &&
                   win.left + win.out_w <= win.resized_w,
               "resample: the window of {}x{} at row {}, column {} does not lie inside the {}x{} resized image",
               win.out_h, win.out_w, win.top, win.left, win.resized_h, win.resized_w);
}

// Resizing to the same size is the identity for every filter (Pillow returns a copy): only
// the window is cut out.
template <class T>
void crop(const T* src, int64_t w, const ResizeWindow& win, T* dst) {
  for (int64_t y = 0; y < win.out_h; ++y) {
    const T* row = src + (win.top + y) * w + win.left;
    std::copy(row, row + win.out_w, dst + y * win.out_w);
  }
}

template <class T>
void resample_any(const T* src, int64_t h, int64_t w, const ResizeWindow& win, Interpolation interpolation, T* dst) {
  check_window(h, w, win);
  if (win.resized_h == h && win.resized_w == w) return crop(src, w, win, dst);
  if (interpolation == Interpolation::nearest) return resample_nearest(src, h, w, win, dst);
  resample_filtered(src, w, win, filter_taps(w, win.resized_w, interpolation),
                    filter_taps(h, win.resized_h, interpolation), dst);
}

}  // namespace

Interpolation parse_interpolation(const std::string& name) {
  if (name == "nearest") return Interpolation::nearest;
  if (name == "bilinear") return Interpolation::bilinear;
  if (name == "bicubic") return Interpolation::bicubic;
  fail("unknown interpolation '{}'; expected one of: nearest, bilinear, bicubic", name);
}

std::string to_string(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::nearest: return "nearest";
    case Interpolation::bilinear: return "bilinear";
    case Interpolation::bicubic: return "bicubic";
  }
  fail("to_string: invalid Interpolation value {}", int(interpolation));
}

AxisTaps filter_taps(int64_t in, int64_t out, Interpolation interpolation) {
  RETORT_CHECK(interpolation != Interpolation::nearest, "filter_taps: nearest has no filter (use nearest_indices)");
  RETORT_CHECK(in > 0 && out > 0, "filter_taps: cannot resample {} samples to {}", in, out);
  const bool cubic = interpolation == Interpolation::bicubic;
  const double scale = double(in) / double(out);
  const double filter_scale = std::max(scale, 1.0);  // shrinking widens the filter: antialiasing
  const double support = (cubic ? 2.0 : 1.0) * filter_scale;
  AxisTaps taps;
  taps.stride = int64_t(std::ceil(support)) * 2 + 1;
  taps.weights.assign(size_t(out * taps.stride), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const double center = (double(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(int64_t(center + support + 0.5), in);
    double* k = taps.weights.data() + i * taps.stride;
    const double inverse_scale = 1.0 / filter_scale;
    double total = 0.0;
    for (int64_t j = lo; j < hi; ++j) {
      const double t = (double(j) - center + 0.5) * inverse_scale;
      total += k[j - lo] = cubic ? keys_cubic(t) : triangle(t);
    }
    if (total != 0.0)
      for (int64_t j = 0; j < hi - lo; ++j) k[j] /= total;
    taps.first.push_back(lo);
    taps.count.push_back(hi - lo);
  }
  return taps;
}

std::vector<int64_t> nearest_indices(int64_t in, int64_t out) {
  RETORT_CHECK(in > 0 && out > 0, "nearest_indices: cannot resample {} samples to {}", in, out);
  const double scale = double(in) / double(out);
  std::vector<int64_t> idx(static_cast<size_t>(out));
  double position = scale * 0.5;
  for (int64_t i = 0; i < out; ++i, position += scale) idx[size_t(i)] = std::min<int64_t>(int64_t(position), in - 1);
  return idx;
}

void resample_plane(const uint8_t* src, int64_t h, int64_t w, const ResizeWindow& window, Interpolation interpolation,
                    uint8_t* dst) {
  resample_any(src, h, w, window, interpolation, dst);
}

void resample_plane(const float* src, int64_t h, int64_t w, const ResizeWindow& window, Interpolation interpolation,
                    float* dst) {
  resample_any(src, h, w, window, interpolation, dst);
}

}  // namespace retort::data
