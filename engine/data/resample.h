// Image resampling as Pillow's Image.resize does it: separable (a horizontal pass, then a
// vertical one), pixel centres at half-integers, and antialiased when shrinking (the filter's
// support widens by the scale factor). Bilinear is the triangle filter, bicubic the Keys cubic
// with a = -0.5, nearest Pillow's scaled affine lookup. u8 planes follow Pillow's fixed-point
// arithmetic (22 fraction bits, a rounded u8 image between the passes); float planes use the
// same weights in double and neither round nor clamp. The rows are always resampled first, as
// Pillow up to 12 does (Pillow 13 runs the vertical pass first when the height shrinks by more
// than twice as many pixels as the width, which moves a few pixels by a grey level or more).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace retort::data {

enum class Interpolation { nearest, bilinear, bicubic };

// "nearest" | "bilinear" | "bicubic"; any other name throws an error listing them.
Interpolation parse_interpolation(const std::string& name);
std::string to_string(Interpolation interpolation);

// One axis of a resize from `in` to `out` samples: output i reads inputs
// [first[i], first[i] + count[i]) with weights[i * stride + j] (normalised to sum 1).
struct AxisTaps {
  std::vector<int64_t> first, count;
  std::vector<double> weights;
  int64_t stride = 0;
};
// Pillow's precompute_coeffs for the bilinear or bicubic filter (not nearest).
AxisTaps filter_taps(int64_t in, int64_t out, Interpolation interpolation);
// The input index of each output sample under Pillow's nearest resize (ImagingScaleAffine:
// the position starts at scale / 2 and is advanced by adding scale, in double).
std::vector<int64_t> nearest_indices(int64_t in, int64_t out);

// A resize of a plane to resized_h x resized_w of which only the window rows
// [top, top + out_h) and columns [left, left + out_w) are kept (a centre crop, or all of it).
struct ResizeWindow {
  int64_t resized_h = 0, resized_w = 0;
  int64_t top = 0, left = 0, out_h = 0, out_w = 0;
};

// src [h, w] -> dst [window.out_h, window.out_w]. The window must lie inside the resized size.
void resample_plane(const uint8_t* src, int64_t h, int64_t w, const ResizeWindow& window, Interpolation interpolation,
                    uint8_t* dst);
void resample_plane(const float* src, int64_t h, int64_t w, const ResizeWindow& window, Interpolation interpolation,
                    float* dst);

}  // namespace retort::data
