// FSP loss: the matrix and the loss on a hand-computed example, gradient checks w.r.t. the student
// maps (average and max pooling, with learned channel projections), the shuffle permutations,
// FSP across widths (resnet8 student, wrn_16_2 teacher) and the registry's errors.
#include <algorithm>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/fsp.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::loss_recipe;

TEST_CASE("fsp: matrix and loss on a hand-computed example") {
  // B = 1, 2x2 maps (h*w = 4), values row-major:
  //   F1 ch0 = [1, 2, 3, 4], ch1 = [0, 1, 0, 1];  F2 ch0 = [1, 0, 0, 1], ch1 = [2, 2, -1, 1]
  //   G00 = (1 + 0 + 0 + 4) / 4 = 1.25     G01 = (2 + 4 - 3 + 4) / 4 = 1.75
  //   G10 = (0 + 0 + 0 + 1) / 4 = 0.25     G11 = (0 + 2 + 0 + 1) / 4 = 0.75
  Tensor f1 = Tensor::from_vector({1, 2, 3, 4, 0, 1, 0, 1}, {1, 2, 2, 2}, DType::f64);
  Tensor f2 = Tensor::from_vector({1, 0, 0, 1, 2, 2, -1, 1}, {1, 2, 2, 2}, DType::f64);
  Tensor g = transfer::fsp_matrix(f1, f2);
  CHECK(g.shape() == Shape{1, 2, 2});
  retort::test::check_close(g, {1.25, 1.75, 0.25, 0.75}, 1e-12);
  // G_T = [[1, 2], [0, 1]]: G_T - G_S = [-0.25, 0.25, -0.25, 0.25], ||.||_F^2 = 4 * 0.0625 = 0.25
  Tensor gt = Tensor::from_vector({1, 2, 0, 1}, {1, 2, 2}, DType::f64);
  retort::test::check_close(transfer::fsp_loss({g}, {gt}), {0.25}, 1e-12);
  // B = 2, the second sample matches exactly: (0.25 + 0) / 2; two pairs add up
  Tensor g2 = concat({g, gt}, 0), gt2 = concat({gt, gt}, 0);
  retort::test::check_close(transfer::fsp_loss({g2}, {gt2}), {0.125}, 1e-12);
  retort::test::check_close(transfer::fsp_loss({g2, g2}, {gt2, gt2}), {0.25}, 1e-12);
  // RepDistiller's mean over b, i, j: 0.25 / (2 * 2 * 2) per pair
  retort::test::check_close(transfer::fsp_loss({g2}, {gt2}, transfer::FspReduction::mean), {0.03125}, 1e-12);
  // non-square G: 2 x 1 channels; F2' = ch1 of F2 -> G = [1.75, 0.75]
  retort::test::check_close(transfer::fsp_matrix(f1, f2.slice(1, 1, 2)), {1.75, 0.75}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::fsp_matrix(f1, Tensor::zeros({1, 2, 3, 3}, DType::f64)),
                       doctest::Contains("fsp_matrix: maps"), Error);
}

TEST_CASE("fsp: consecutive pairs pool the larger map (average for repdistiller, max for paper)") {
  // stem 4x4 (1 channel, 0..15) and stage 2x2 (1 channel, all 1): G = mean of pooled stem
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = i;
  Tensor a = Tensor::from_vector(v, {1, 1, 4, 4}, DType::f64);
  Tensor b = Tensor::ones({1, 1, 2, 2}, DType::f64);
  // average pooled blocks 2.5, 4.5, 10.5, 12.5 -> mean 7.5; max pooled 5, 7, 13, 15 -> mean 10
  retort::test::check_close(transfer::fsp_matrices({a, b}, transfer::PoolMode::average)[0], {7.5}, 1e-12);
  retort::test::check_close(transfer::fsp_matrices({b, a}, transfer::PoolMode::max)[0], {10.0}, 1e-12);
  CHECK(transfer::fsp_matrices({a, b, a}, transfer::PoolMode::average).size() == 2);
}

TEST_CASE("fsp: gradient checks w.r.t. the student maps") {
  const std::vector<Shape> shapes{{2, 3, 4, 4}, {2, 2, 2, 2}, {2, 4, 2, 2}};
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < shapes.size(); ++k) {
    s.push_back(retort::test::random_tensor(shapes[k], 50 + k));
    t.push_back(retort::test::random_tensor(shapes[k], 60 + k));
  }
  for (auto pool : {transfer::PoolMode::average, transfer::PoolMode::max}) {
    auto tg = transfer::fsp_matrices(t, pool);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) { return transfer::fsp_loss(transfer::fsp_matrices(in, pool), tg); }, s);
  }
  // with learned projections: student channels 2 and 3 against teacher channels 3 and 3
  transfer::FspOptions o;
  o.pairing = transfer::FspPairing::paper;
  transfer::FspLoss loss("t", {TapInfo{"stem", {2, 2, 4, 4}}, TapInfo{"stage1", {2, 3, 2, 2}}},
                         {TapInfo{"stem", {2, 3, 4, 4}}, TapInfo{"stage1", {2, 3, 2, 2}}}, o, Device::cpu(), 3);
  REQUIRE(loss.projection(0) != nullptr);
  CHECK(loss.projection(1) == nullptr);
  CHECK(loss.parameters().size() == 3);
  loss.projection(0)->to(DType::f64);
  std::vector<Tensor> tm{retort::test::random_tensor({2, 3, 4, 4}, 70), retort::test::random_tensor({2, 3, 2, 2}, 71)};
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in, tm); },
                          {retort::test::random_tensor({2, 2, 4, 4}, 72), retort::test::random_tensor({2, 3, 2, 2}, 73)});
}

TEST_CASE("fsp: shuffle permutes the teacher matrices' rows and columns, reproducibly") {
  const std::vector<TapInfo> taps{TapInfo{"stem", {2, 5, 4, 4}}, TapInfo{"stage1", {2, 6, 2, 2}}};
  std::vector<Tensor> tm{retort::test::random_tensor({2, 5, 4, 4}, 80), retort::test::random_tensor({2, 6, 2, 2}, 81)};
  transfer::FspOptions plain, shuffled, shuffled2, other;
  shuffled.shuffle = shuffled2.shuffle = other.shuffle = true;
  shuffled.shuffle_seed = shuffled2.shuffle_seed = 5;
  other.shuffle_seed = 6;
  auto g = transfer::FspLoss("t", taps, taps, plain, Device::cpu(), 0).teacher_matrices(tm)[0];
  auto gs = transfer::FspLoss("t", taps, taps, shuffled, Device::cpu(), 0).teacher_matrices(tm)[0];
  auto gs2 = transfer::FspLoss("t", taps, taps, shuffled2, Device::cpu(), 9).teacher_matrices(tm)[0];
  auto go = transfer::FspLoss("t", taps, taps, other, Device::cpu(), 0).teacher_matrices(tm)[0];
  CHECK(gs.shape() == Shape{2, 5, 6});
  CHECK(gs.to_vector() == gs2.to_vector());  // fixed by shuffle_seed
  CHECK(gs.to_vector() != g.to_vector());
  CHECK(gs.to_vector() != go.to_vector());
  // each sample's matrix is a row and column permutation: the same multiset of entries, and each
  // shuffled row is a permutation of some original row
  for (int64_t b = 0; b < 2; ++b) {
    auto orig = g.select(0, b).contiguous().to_vector(), perm = gs.select(0, b).contiguous().to_vector();
    auto so = orig, sp = perm;
    std::sort(so.begin(), so.end());
    std::sort(sp.begin(), sp.end());
    CHECK(so == sp);
    for (int64_t r = 0; r < 5; ++r) {
      std::vector<double> row(perm.begin() + r * 6, perm.begin() + (r + 1) * 6);
      std::sort(row.begin(), row.end());
      bool found = false;
      for (int64_t q = 0; q < 5 && !found; ++q) {
        std::vector<double> orow(orig.begin() + q * 6, orig.begin() + (q + 1) * 6);
        std::sort(orow.begin(), orow.end());
        found = orow == row;
      }
      CHECK(found);
    }
  }
}

TEST_CASE("fsp: resnet8 student learns from a wider wrn_16_2 teacher through projections") {
  const Shape input{1, 1, 28, 28};
  auto student = models::create_model("resnet8", fmnist_config(1));   // stem 16, stages 16/32/64
  auto teacher = models::create_model("wrn_16_2", fmnist_config(2));  // stem 16, stages 32/64/128
  auto loss = transfer::make_fsp_loss(*student, *teacher, "teacher", {}, {}, input, {}, Device::cpu(), 0);
  CHECK(loss->student_taps() == std::vector<std::string>{"stem", "stage1", "stage2", "stage3"});
  CHECK(loss->projection(0) == nullptr);
  CHECK(loss->projection(1) != nullptr);
  CHECK(loss->projection(2) != nullptr);
  CHECK(loss->projection(3) != nullptr);
  check_trains_student(*loss, *student, *teacher,
                       {.x = retort::test::random_tensor({3, 1, 28, 28}, 90, -1, 1, DType::f32), .teacher = "teacher"});
}

TEST_CASE("fsp: registry defaults and errors") {
  auto teacher = models::create_model("wrn_16_2", fmnist_config(3));
  auto student = models::create_model("resnet8", fmnist_config(4));
  auto vit = models::create_model("vit_tiny", fmnist_config(5));
  auto build = [&](const Recipe& r, std::shared_ptr<models::Model> s) { return build_term(r, s, {{"t", teacher}}); };
  const Recipe ok = loss_recipe("{ name = \"fsp\", teacher = \"t\" }");
  CHECK(loss_args(ok, ok.stages[0].losses[0]).string("pairing") == "repdistiller");
  CHECK(loss_args(ok, ok.stages[0].losses[0]).boolean("shuffle") == false);
  CHECK(loss_args(ok, ok.stages[0].losses[0]).integer("shuffle_seed") == 0);
  CHECK_FALSE(loss_args(ok, ok.stages[0].losses[0]).has("reduction"));  // sum for form retort, mean for repdistiller
  CHECK(loss_args(ok, ok.stages[0].losses[0]).string("form") == "retort");
  CHECK(ok.stages[0].losses[0].weight == 1e-3);  // the retort form's default weight
  // RepDistiller's exact form refuses unequal widths (resnet8 16/32/64 vs wrn_16_2 32/64/128)...
  const Recipe exact = loss_recipe("{ name = \"fsp\", teacher = \"t\", form = \"repdistiller\" }");
  CHECK_THROWS_WITH_AS(build(exact, student),
                       doctest::Contains("RepDistiller's FSP needs equal channel counts, but student tap 'stage1' has "
                                         "16 and teacher tap 'stage1' 32"),
                       Error);
  // ... and keys that contradict it.
  const Recipe contradiction =
      loss_recipe("{ name = \"fsp\", teacher = \"t\", form = \"repdistiller\", reduction = \"sum\" }");
  CHECK_THROWS_WITH_AS(build(contradiction, teacher), doctest::Contains("remove the conflicting key"), Error);
  CHECK(build(exact, teacher)->student_taps().size() == 4);  // equal widths: a wrn_16_2 student
  CHECK(build(ok, student)->teacher_taps() == std::vector<std::string>{"stem", "stage1", "stage2", "stage3"});

  const Recipe taps =
      loss_recipe("{ name = \"fsp\", teacher = \"t\", pairing = \"paper\", taps = [\"stage1\", \"stage2\"] }");
  CHECK(build(taps, student)->student_taps() == std::vector<std::string>{"stage1", "stage2"});

  // pairing and reduction are checked when the recipe is read, naming the line
  CHECK_THROWS_WITH_AS(
      loss_recipe("{ name = \"fsp\", teacher = \"t\", pairing = \"zigzag\" }"),
      doctest::Contains("p.toml:11: key 'pairing' in [stages.losses.fsp] must be one of \"repdistiller\", \"paper\""),
      Error);
  CHECK_THROWS_WITH_AS(
      loss_recipe("{ name = \"fsp\", teacher = \"t\", reduction = \"max\" }"),
      doctest::Contains("key 'reduction' in [stages.losses.fsp] must be one of \"sum\""), Error);
  // a ViT student has no stem/stage taps: the default tap lists differ
  CHECK_THROWS_WITH_AS(build(ok, vit), doctest::Contains("the default taps (stem, stage1..stageN) differ"), Error);
  // a vector tap cannot enter an FSP matrix
  const Recipe vec = loss_recipe("{ name = \"fsp\", teacher = \"t\", taps = [\"stage3\", \"pooled\"] }");
  CHECK_THROWS_WITH_AS(build(vec, student), doctest::Contains("tap 'pooled' is a vector [1, 64]"), Error);

  // a ViT paired with a ResNet: each network names its own taps, pair k with pair k
  const Recipe cross = loss_recipe(
      "{ name = \"fsp\", teacher = \"t\", student_taps = [\"tokens.0\", \"tokens.1\"], teacher_taps = [\"stem\", "
      "\"stage1\"] }");
  auto cross_loss = build(cross, vit);
  CHECK(cross_loss->student_taps() == std::vector<std::string>{"tokens.0", "tokens.1"});
  CHECK(cross_loss->teacher_taps() == std::vector<std::string>{"stem", "stage1"});
  const Recipe both = loss_recipe(
      "{ name = \"fsp\", teacher = \"t\", taps = [\"stem\", \"stage1\"], student_taps = [\"stem\", \"stage1\"] }");
  CHECK_THROWS_WITH_AS(build(both, student), doctest::Contains("either `taps`"), Error);
  const Recipe half = loss_recipe("{ name = \"fsp\", teacher = \"t\", student_taps = [\"stem\", \"stage1\"] }");
  CHECK_THROWS_WITH_AS(build(half, student), doctest::Contains("`student_taps` and `teacher_taps` go together"), Error);
  const Recipe uneven = loss_recipe(
      "{ name = \"fsp\", teacher = \"t\", student_taps = [\"stem\", \"stage1\"], teacher_taps = [\"stem\", \"stage1\", "
      "\"stage2\"] }");
  CHECK_THROWS_WITH_AS(build(uneven, student), doctest::Contains("2 student taps [stem, stage1] but 3 teacher taps"),
                       Error);
}

TEST_CASE("fsp: a ViT teacher's token taps guide a resnet8 student (cross-architecture)") {
  const Shape input{1, 1, 28, 28};
  auto student = models::create_model("resnet8", fmnist_config(6));
  models::ModelConfig vc = fmnist_config(7);
  vc.patch_size = 7;
  vc.depth = 4;
  auto teacher = models::create_model("vit_tiny", vc);  // 4x4 token grid, 192 channels
  auto loss = transfer::make_fsp_loss(*student, *teacher, "teacher", {"stem", "stage1", "stage2", "stage3"},
                                      {"tokens.0", "tokens.1", "tokens.2", "tokens.3"}, input, {}, Device::cpu(), 0);
  for (size_t k = 0; k < 4; ++k) CHECK(loss->projection(k) != nullptr);  // 16/16/32/64 -> 192 channels
  // the teacher's matrices are 192x192 (pairs of 4x4 token grids), one per consecutive pair
  Tensor x = retort::test::random_tensor({3, 1, 28, 28}, 91, -1, 1, DType::f32);
  models::Taps tt;
  {
    NoGradGuard ng;
    teacher->forward(x, &tt);
  }
  auto g = loss->teacher_matrices({tt.at("tokens.0"), tt.at("tokens.1"), tt.at("tokens.2"), tt.at("tokens.3")});
  REQUIRE(g.size() == 3);
  for (const auto& m : g) CHECK(m.shape() == Shape{3, 192, 192});
  check_trains_student(*loss, *student, *teacher, {.x = x, .teacher = "teacher"});
}

TEST_CASE("fsp: form repdistiller equals RepDistiller's FSP (values and gradients)") {
  const auto f = retort::test::load_loss_fixture("fsp_repdistiller");
  const int maps = std::stoi(f.meta("maps"));
  for (DType dtype : {DType::f64, DType::f32}) {
    std::map<std::string, Tensor> in;
    std::vector<Tensor> s, t;
    std::vector<TapInfo> si, ti;
    for (int k = 0; k < maps; ++k) {
      const std::string sk = "student" + std::to_string(k), tk = "teacher" + std::to_string(k);
      in[sk] = f.input(sk, dtype);
      in[tk] = f.input(tk, dtype);
      s.push_back(in[sk]);
      t.push_back(in[tk]);
      si.push_back(TapInfo{"s" + std::to_string(k), in[sk].shape()});
      ti.push_back(TapInfo{"t" + std::to_string(k), in[tk].shape()});
    }
    transfer::FspOptions o;
    o.repdistiller_exact = true;
    o.reduction = transfer::FspReduction::mean;
    transfer::FspLoss loss("t", si, ti, o, Device::cpu(), 0);
    CHECK(loss.parameters().empty());  // no projections in RepDistiller's form
    retort::test::check_loss_fixture(f, loss.compute(s, t), in, dtype);
  }
}
