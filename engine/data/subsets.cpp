// Subset construction: per-class seeded draws, proportional stratified allocation.
#include "engine/data/subsets.h"
#include <algorithm>
#include <numeric>
#include "engine/error.h"
#include "engine/random.h"

namespace retort::data {
namespace {

// View positions grouped by class, each group in view order.
std::vector<std::vector<int64_t>> positions_by_class(const DatasetView& view) {
  std::vector<std::vector<int64_t>> by_class(size_t(view.dataset().num_classes));
  for (int64_t p = 0; p < view.size(); ++p) by_class[size_t(view.label(p))].push_back(p);
  return by_class;
}

// Splits positions by a membership mask into (chosen, rest), both in view order.
std::pair<DatasetView, DatasetView> split_by_mask(const DatasetView& view, const std::vector<char>& chosen) {
  std::vector<int64_t> a, b;
  for (int64_t p = 0; p < view.size(); ++p) (chosen[size_t(p)] ? a : b).push_back(p);
  return {view.subset(a), view.subset(b)};
}

// Marks `take` seeded-random members of `group` in `mask`.
void choose(const std::vector<int64_t>& group, int64_t take, uint64_t seed, std::vector<char>& mask) {
  auto perm = seeded_permutation(int64_t(group.size()), seed);
  for (int64_t i = 0; i < take; ++i) mask[size_t(group[size_t(perm[size_t(i)])])] = 1;
}

}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(size_t(std::max<int64_t>(n, 0)));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  Generator gen(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(gen.randint(i + 1))]);
  return perm;
}

LabelledSplit split_labelled_per_class(const DatasetView& view, int64_t per_class, uint64_t seed) {
  RETORT_CHECK(per_class >= 0, "split_labelled_per_class: per_class must be >= 0, got {}", per_class);
  const auto by_class = positions_by_class(view);
  std::vector<char> mask(size_t(view.size()), 0);
  for (size_t c = 0; c < by_class.size(); ++c) {
    RETORT_CHECK(int64_t(by_class[c].size()) >= per_class,
                 "split_labelled_per_class on '{}': class {} ('{}') has only {} images, {} per class requested",
                 view.dataset().name, c, c < view.dataset().class_names.size() ? view.dataset().class_names[c] : "",
                 by_class[c].size(), per_class);
    choose(by_class[c], per_class, hash64(seed, c), mask);
  }
  auto [labelled, unlabelled] = split_by_mask(view, mask);
  return {std::move(labelled), std::move(unlabelled)};
}

TrainValSplit split_validation(const DatasetView& view, int64_t count, uint64_t seed, bool stratified) {
  RETORT_CHECK(count >= 0 && count <= view.size(), "split_validation on '{}': cannot take {} of {} images",
               view.dataset().name, count, view.size());
  std::vector<char> mask(size_t(view.size()), 0);
  if (!stratified) {
    std::vector<int64_t> all(size_t(view.size()));
    std::iota(all.begin(), all.end(), int64_t(0));
    choose(all, count, seed, mask);
  } else {
    const auto by_class = positions_by_class(view);
    const size_t k = by_class.size();
    std::vector<int64_t> take(k);
    std::vector<std::pair<double, size_t>> remainders;  // (fraction, class): largest first
    int64_t assigned = 0;
    for (size_t c = 0; c < k; ++c) {
      const double exact = double(count) * double(by_class[c].size()) / double(std::max<int64_t>(view.size(), 1));
      take[c] = int64_t(exact);
      assigned += take[c];
      remainders.push_back({exact - double(take[c]), c});
    }
    std::stable_sort(remainders.begin(), remainders.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (size_t r = 0; assigned < count; ++r, ++assigned) ++take[remainders[r % k].second];
    for (size_t c = 0; c < k; ++c) choose(by_class[c], std::min<int64_t>(take[c], int64_t(by_class[c].size())), hash64(seed, c), mask);
  }
  auto [validation, train] = split_by_mask(view, mask);
  return {std::move(train), std::move(validation)};
}

}  // namespace retort::data
