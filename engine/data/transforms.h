// Transforms on float batches: normalise, random crop with zero padding, random horizontal
// flip, bilinear resize. All randomness comes from a retort::Generator, so a seed fixes the bits.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "engine/data/batch.h"
#include "engine/random.h"

namespace retort::data {

// x = (x - mean[c]) / std[c]; mean/std have one entry per channel (or one for all).
void normalize(Batch& b, const std::vector<float>& mean, const std::vector<float>& std);
// Pads each image by `pad` zeros on every side, then crops a random HxW window (offsets
// drawn per image, 2 draws each).
void random_crop(Batch& b, int64_t pad, Generator& gen);
// Mirrors each image left-right with probability p (one draw per image).
void random_hflip(Batch& b, Generator& gen, double p = 0.5);
// Bilinear resize of every image to out_h x out_w (half-pixel centres, like PyTorch's
// interpolate(mode="bilinear", align_corners=False) without antialiasing).
void resize(Batch& b, int64_t out_h, int64_t out_w);
// One channel plane [h, w] -> [out_h, out_w], bilinear as above.
void resize_bilinear_plane(const float* src, int64_t h, int64_t w, float* dst, int64_t out_h, int64_t out_w);

// A step of an augmentation pipeline, as the DataLoader applies them (in order, per batch,
// with that batch's own generator).
struct BatchTransform {
  std::string name;  // "normalize", "random_crop(4)", ...
  std::function<void(Batch&, Generator&)> apply;
};
BatchTransform normalize_transform(std::vector<float> mean, std::vector<float> std);
BatchTransform random_crop_transform(int64_t pad);
BatchTransform random_hflip_transform(double p = 0.5);
BatchTransform resize_transform(int64_t out_h, int64_t out_w);

}  // namespace retort::data
