// Transfer-set curation by retrieval (Vemulapalli et al., ICML 2024, "task-oriented knowledge
// transfer"): when the unlabelled pool is large or off-task, keep only the images the
// foundation model finds close to the labelled ones. Each labelled image is embedded with a
// tap of the teacher (default "pooled"), flattened and L2-normalised; every pool image is
// embedded the same way; for each labelled image the k pool images of highest cosine
// similarity are kept (ties: the lower pool position), and the transfer set is the union of
// those neighbour lists, in pool order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/data/transforms.h"
#include "engine/tensor.h"
#include "models/model.h"

namespace retort::transfer {

// Rows of `x` [N, ...] flattened to [N, D] and scaled to unit L2 norm (zero rows stay zero).
Tensor l2_normalised_rows(const Tensor& x);

// For every row of `queries` [Q, D], the positions of the k rows of `pool` [P, D] with the
// largest dot product (both unit-norm: cosine), best first, ties to the lower position.
// Computed in chunks of the pool on the tensors' device; k is capped at P.
std::vector<std::vector<int64_t>> nearest_neighbours(const Tensor& queries, const Tensor& pool, int64_t k);

struct RetrievalResult {
  data::DatasetView transfer_set;  // the kept pool images, in pool order
  int64_t neighbours_listed = 0;   // Q * k before removing duplicates
};

// Embeds `labelled` and `pool` with `model`'s `tap` (eval mode, no grad, `transforms`
// applied) and keeps the union of each labelled image's k nearest pool images.
RetrievalResult curate_by_retrieval(models::Model& model, const std::string& tap, const data::DatasetView& labelled,
                                    const data::DatasetView& pool, int64_t k,
                                    const std::vector<data::BatchTransform>& transforms, Device device);

}  // namespace retort::transfer
