// Transfer-set curation by retrieval: embeddings, chunked cosine top-k, union of neighbours.
#include "transfer/retrieval.h"
#include <algorithm>
#include <set>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/feature_cache.h"

namespace retort::transfer {

Tensor l2_normalised_rows(const Tensor& x) {
  RETORT_CHECK(x.dim() >= 1, "l2_normalised_rows: expected [N, ...], got {}", x.str());
  Tensor flat = x.reshape({x.size(0), x.numel() / std::max<int64_t>(x.size(0), 1)});
  Tensor norm = sqrt(sum(mul(flat, flat), {1}, true));
  return div(flat, clamp(norm, 1e-12, INFINITY));
}

std::vector<std::vector<int64_t>> nearest_neighbours(const Tensor& queries, const Tensor& pool, int64_t k) {
  RETORT_CHECK(queries.dim() == 2 && pool.dim() == 2 && queries.size(1) == pool.size(1),
               "nearest_neighbours: expected queries [Q, D] and pool [P, D], got {} and {}", queries.str(), pool.str());
  RETORT_CHECK(k > 0, "nearest_neighbours: k must be positive, got {}", k);
  NoGradGuard no_grad;
  const int64_t q = queries.size(0), p = pool.size(0);
  k = std::min(k, p);
  // Each query keeps its best k as (similarity, position), sorted best first.
  std::vector<std::vector<std::pair<double, int64_t>>> best(static_cast<size_t>(q));
  auto better = [](const std::pair<double, int64_t>& a, const std::pair<double, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  constexpr int64_t kChunk = 4096;
  for (int64_t first = 0; first < p; first += kChunk) {
    const int64_t last = std::min(p, first + kChunk);
    std::vector<double> sims = matmul(queries, pool.slice(0, first, last).transpose(0, 1)).to_vector();
    const int64_t width = last - first;
    for (int64_t i = 0; i < q; ++i) {
      auto& list = best[size_t(i)];
      for (int64_t j = 0; j < width; ++j) list.emplace_back(sims[size_t(i * width + j)], first + j);
      std::partial_sort(list.begin(), list.begin() + std::min<int64_t>(k, int64_t(list.size())), list.end(), better);
      if (int64_t(list.size()) > k) list.resize(size_t(k));
    }
  }
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(q));
  for (int64_t i = 0; i < q; ++i)
    for (const auto& [s, pos] : best[size_t(i)]) out[size_t(i)].push_back(pos);
  return out;
}

RetrievalResult curate_by_retrieval(models::Model& model, const std::string& tap, const data::DatasetView& labelled,
                                    const data::DatasetView& pool, int64_t k,
                                    const std::vector<data::BatchTransform>& transforms, Device device) {
  RETORT_CHECK(!labelled.empty() && !pool.empty(), "retrieval: needs labelled images ({}) and a pool ({})",
               labelled.size(), pool.size());
  const std::set<std::string> taps{tap};
  Tensor queries = l2_normalised_rows(compute_view_taps(model, taps, labelled, transforms, device).at(tap)).to(device);
  Tensor keys = l2_normalised_rows(compute_view_taps(model, taps, pool, transforms, device).at(tap)).to(device);
  auto lists = nearest_neighbours(queries, keys, k);
  std::set<int64_t> kept;
  RetrievalResult r;
  for (const auto& list : lists) {
    r.neighbours_listed += int64_t(list.size());
    kept.insert(list.begin(), list.end());
  }
  r.transfer_set = pool.subset(std::vector<int64_t>(kept.begin(), kept.end()));
  return r;
}

}  // namespace retort::transfer
