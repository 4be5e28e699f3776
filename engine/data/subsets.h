// Seeded, reproducible subsets of a DatasetView: N labelled images per class plus the rest as
// an unlabelled pool, and train/validation splits (optionally stratified by class).
#pragma once
#include <cstdint>
#include <vector>
#include "engine/data/dataset.h"

namespace retort::data {

// A permutation of 0..n-1 that depends only on `seed`.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

struct LabelledSplit {
  DatasetView labelled;    // exactly per_class images of every class
  DatasetView unlabelled;  // every other image (its labels are there but meant to be ignored)
};
// Draws per_class images of each class (seeded); both views keep the input's order.
LabelledSplit split_labelled_per_class(const DatasetView& view, int64_t per_class, uint64_t seed);

struct TrainValSplit {
  DatasetView train;
  DatasetView validation;  // exactly `count` images
};
// Takes `count` images off `view` as a validation set (seeded). Stratified: each class gets
// its share of `count` in proportion to its size (largest remainders round), so the class
// balance is kept.
TrainValSplit split_validation(const DatasetView& view, int64_t count, uint64_t seed, bool stratified = true);

}  // namespace retort::data
