// Subsets: exactly N per class, disjoint pools covering the data, stratified validation
// splits, reproducible per seed.
#include <algorithm>
#include <memory>
#include <set>
#include "data_test_util.h"
#include "engine/data/subsets.h"

using namespace retort;
using namespace retort::data;

namespace {
// Unbalanced labels: class c has 10 + 5 c images (c = 0..3) -> 10, 15, 20, 25 = 70 images.
std::shared_ptr<const Dataset> unbalanced() {
  auto ds = std::make_shared<Dataset>();
  ds->name = "unbalanced";
  ds->channels = 1, ds->height = 1, ds->width = 1;
  ds->num_classes = 4;
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t k = 0; k < 10 + 5 * c; ++k) ds->labels.push_back(c);
  std::vector<int64_t> perm = seeded_permutation(int64_t(ds->labels.size()), 3);
  std::vector<int64_t> shuffled;
  for (int64_t p : perm) shuffled.push_back(ds->labels[size_t(p)]);
  ds->labels = shuffled;
  ds->images.assign(ds->labels.size(), 7);
  ds->validate();
  return ds;
}

std::set<int64_t> as_set(const DatasetView& v) { return {v.indices().begin(), v.indices().end()}; }
}  // namespace

TEST_CASE("subsets: N labelled per class plus a disjoint unlabelled pool") {
  DatasetView all(unbalanced());
  auto split = split_labelled_per_class(all, 6, 42);
  CHECK(split.labelled.size() == 24);
  CHECK(split.labelled.class_counts() == std::vector<int64_t>{6, 6, 6, 6});
  CHECK(split.unlabelled.size() == 70 - 24);
  CHECK(split.unlabelled.class_counts() == std::vector<int64_t>{4, 9, 14, 19});
  auto a = as_set(split.labelled), b = as_set(split.unlabelled);
  CHECK(a.size() == 24);
  for (int64_t i : a) CHECK(b.count(i) == 0);
  CHECK(a.size() + b.size() == 70);
  auto again = split_labelled_per_class(all, 6, 42);
  CHECK(again.labelled.indices() == split.labelled.indices());
  auto other = split_labelled_per_class(all, 6, 43);
  CHECK(other.labelled.indices() != split.labelled.indices());
  CHECK_THROWS_WITH_AS(split_labelled_per_class(all, 11, 1), doctest::Contains("class 0 ('') has only 10 images, 11"),
                       Error);
  // Works on a view of a view: indices stay dataset indices.
  auto nested = split_labelled_per_class(split.unlabelled, 4, 9);
  CHECK(nested.labelled.class_counts() == std::vector<int64_t>{4, 4, 4, 4});
  for (int64_t i : nested.labelled.indices()) CHECK(b.count(i) == 1);
}

TEST_CASE("subsets: validation split, stratified and not") {
  DatasetView all(unbalanced());
  auto s = split_validation(all, 14, 5, true);
  CHECK(s.validation.size() == 14);
  CHECK(s.train.size() == 56);
  CHECK(s.validation.class_counts() == std::vector<int64_t>{2, 3, 4, 5});  // 14 * (10,15,20,25)/70
  auto v = as_set(s.validation), t = as_set(s.train);
  for (int64_t i : v) CHECK(t.count(i) == 0);
  CHECK(v.size() + t.size() == 70);
  auto s2 = split_validation(all, 14, 5, true);
  CHECK(s2.validation.indices() == s.validation.indices());
  // 9 of 70 -> exact shares 1.29, 1.93, 2.57, 3.21: floors 1,1,2,3 (7) + the two largest remainders (classes 1, 2).
  CHECK(split_validation(all, 9, 1, true).validation.class_counts() == std::vector<int64_t>{1, 2, 3, 3});
  auto u = split_validation(all, 20, 8, false);
  CHECK(u.validation.size() == 20);
  CHECK(u.train.size() == 50);
  CHECK(split_validation(all, 20, 8, false).validation.indices() == u.validation.indices());
  CHECK_THROWS_WITH_AS(split_validation(all, 71, 0), doctest::Contains("cannot take 71 of 70 images"), Error);
}

TEST_CASE("subsets: seeded permutation is a permutation and reproducible") {
  auto p = seeded_permutation(50, 17);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) CHECK(sorted[size_t(i)] == i);
  CHECK(seeded_permutation(50, 17) == p);
  CHECK(seeded_permutation(50, 18) != p);
}
