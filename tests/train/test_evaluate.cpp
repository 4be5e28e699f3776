// Evaluation: top-k counting, and non-finite logits, which must never count as correct (a NaN
// compares false with everything, so a naive count takes a NaN row for a hit).
#include <cmath>
#include "engine/data/loader.h"
#include "helpers.h"
#include "models/registry.h"
#include "train/evaluate.h"

using namespace retort;

TEST_CASE("evaluate: top-k counts hits, ties go to the lower class") {
  Tensor logits = Tensor::from_vector({0.1, 0.9, 0.0,  /* row 0: class 1 */
                                       0.5, 0.5, 0.2,  /* row 1: a tie of 0 and 1 */
                                       0.3, 0.2, 0.1}, {3, 3});
  TopkCounts c;
  count_topk(logits, Tensor::from_i64({1, 1, 2}, {3}), c);
  CHECK(c.top1 == 1);  // row 1's tie goes to class 0, row 2's label is last
  CHECK(c.top5 == 3);
  CHECK(c.nonfinite_rows == 0);
}

TEST_CASE("evaluate: a row with a NaN or an infinite logit is never a hit") {
  for (double bad : {double(NAN), double(INFINITY), -double(INFINITY)}) {
    INFO("bad logit " << bad);
    // Row 0: the bad value in another class; row 1: in the label's class; row 2: all NaN.
    Tensor logits = Tensor::from_vector({0.9, bad, 0.0, 0.1, bad, 0.2, bad, bad, bad, 0.2, 0.7, 0.1}, {4, 3});
    TopkCounts c;
    count_topk(logits, Tensor::from_i64({0, 1, 2, 1}, {4}), c);
    CHECK(c.top1 == 1);  // only row 3
    CHECK(c.top5 == 1);
    CHECK(c.nonfinite_rows == 3);
  }
}

TEST_CASE("evaluate: the device-side counts equal count_topk, ties and non-finite rows included") {
  // Random rows on a coarse grid (many exact ties) with labels everywhere, plus rows holding a
  // NaN, an infinity or a tie at the label; 3 classes (every finite row a top-5 hit) and 7.
  for (int64_t classes : {3, 7}) {
    INFO(classes << " classes");
    Generator g{uint64_t(classes)};
    std::vector<double> v;
    std::vector<int64_t> y;
    for (int row = 0; row < 80; ++row) {
      for (int64_t j = 0; j < classes; ++j) v.push_back(std::floor(g.uniform() * 4.0) / 4.0);
      y.push_back(int64_t(g.uniform() * double(classes)) % classes);
    }
    v[1] = NAN;
    v[size_t(classes) + 2] = INFINITY;
    const int64_t rows = int64_t(y.size());
    const Tensor logits = Tensor::from_vector(v, {rows, classes}, DType::f32), labels = Tensor::from_i64(y, {rows});
    TopkCounts c;
    count_topk(logits, labels, c);
    const auto d = topk_counts_on_device(logits, labels).to_vector();
    CHECK(d[0] == double(c.top1));
    CHECK(d[1] == double(c.top5));
    CHECK(d[2] == double(c.nonfinite_rows));
    CHECK(c.nonfinite_rows == 2);
    CHECK(c.top1 > 0);
    CHECK(c.top5 > c.top1);
  }
}

TEST_CASE("evaluate: a model with a NaN weight scores 0 %, says so, and its loss is not finite") {
  models::ModelConfig cfg;
  cfg.in_channels = 1, cfg.num_classes = 3, cfg.image_size = 8;
  auto model = models::create_model("resnet8", cfg);
  // One NaN in the first convolution spreads to every logit.
  Tensor w = model->named_parameters().front().second;
  auto values = w.to_vector();
  values[0] = NAN;
  w.copy_(Tensor::from_vector(values, w.shape(), w.dtype()));
  auto data = std::make_shared<data::Dataset>();
  data->name = "tiny";
  data->channels = 1, data->height = 8, data->width = 8, data->num_classes = 3;
  for (int i = 0; i < 6; ++i) {
    data->labels.push_back(i % 3);
    for (int p = 0; p < 64; ++p) data->images.push_back(uint8_t((i * 37 + p * 11) % 256));
  }
  data::LoaderOptions lo;
  lo.batch_size = 4;
  lo.shuffle = false;
  lo.num_workers = 0;
  data::DataLoader loader(data::DatasetView(data), lo);
  EvalResult r = evaluate(*model, loader, Device::cpu());
  CHECK(r.images == 6);
  CHECK(r.top1 == 0.0);
  CHECK(r.top5 == 0.0);
  CHECK(r.nonfinite_rows == 6);
  CHECK_FALSE(r.finite());
}
