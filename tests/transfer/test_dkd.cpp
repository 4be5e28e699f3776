// DKD (decoupled KD): a hand-computed TCKD/NCKD example, the identity that splits classical KD
// into the two terms, f64 gradient checks, mdistiller's dkd_loss on the reference fixture, the
// warm-up factor, the registry and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/dkd.h"
#include "transfer/kd.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
Tensor labels_of(std::vector<double> v) {
  const int64_t n = int64_t(v.size());
  return Tensor::from_vector(v, {n}, DType::f64).to(DType::i64);
}
}  // namespace

TEST_CASE("dkd: hand-computed target and non-target terms") {
  // T = 2, logits chosen so that softmax(z / 2) has exact values. Row 0 (label 0): student z_s = 0
  // (uniform 1/3), teacher z_t = [0, 2 ln 3, 0] -> p_t = [1/5, 3/5, 1/5]. Row 1 (label 2): z_s = 0,
  // z_t = [2 ln 3, 0, 0] -> p_t = [3/5, 1/5, 1/5]. In both rows
  //   b_t = (1/5, 4/5), b_s = (1/3, 2/3): TCKD_row = 0.2 ln(0.2 * 3) + 0.8 ln(0.8 * 3/2)
  //   non-target: teacher (3/4, 1/4), student (1/2, 1/2): NCKD_row = 0.75 ln 1.5 + 0.25 ln 0.5
  // and each term is T^2 = 4 times the row mean.
  const double l3 = 2 * std::log(3.0);
  Tensor s = Tensor::zeros({2, 3}, DType::f64);
  Tensor t = Tensor::from_vector({0, l3, 0, l3, 0, 0}, {2, 3}, DType::f64);
  Tensor y = labels_of({0, 2});
  const double tckd = 4 * (0.2 * std::log(0.6) + 0.8 * std::log(1.2));
  const double nckd = 4 * (0.75 * std::log(1.5) + 0.25 * std::log(0.5));
  check_close(transfer::dkd_target_loss(s, t, y, 2.0), {tckd}, 1e-12);
  check_close(transfer::dkd_non_target_loss(s, t, y, 2.0), {nckd}, 1e-12);
  check_close(transfer::dkd_loss(s, t, y, {.alpha = 1.0, .beta = 8.0, .temperature = 2.0}), {tckd + 8 * nckd}, 1e-12);
  check_close(transfer::dkd_loss(s, t, y, {.alpha = 0.5, .beta = 0.0, .temperature = 2.0}), {0.5 * tckd}, 1e-12);
  // the same predictions give 0
  check_close(transfer::dkd_loss(t, t, y, {.temperature = 2.0}), {0.0}, 1e-12);
}

TEST_CASE("dkd: classical KD is TCKD + (1 - p_t,y) * NCKD, per example") {
  // The decomposition of the paper's eq. (3), on one example of random logits.
  Tensor s = random_tensor({1, 6}, 301, -3, 3);
  Tensor t = random_tensor({1, 6}, 302, -3, 3);
  Tensor y = labels_of({4});
  const double T = 3.0;
  const double p_ty = softmax(mul(t, 1 / T), 1).to_vector()[4];
  const double kd = transfer::kd_loss(s, t, T).item();
  check_close(transfer::dkd_loss(s, t, y, {.alpha = 1.0, .beta = 1 - p_ty, .temperature = T}), {kd}, 1e-12);
}

TEST_CASE("dkd: gradient checks w.r.t. the student logits") {
  Tensor t = random_tensor({4, 5}, 303, -2, 2);
  Tensor y = labels_of({0, 3, 4, 3});
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) { return transfer::dkd_loss(in[0], t, y, {.alpha = 1.5, .beta = 8.0}); },
      {random_tensor({4, 5}, 304, -2, 2)});
}

TEST_CASE("dkd: matches mdistiller's dkd_loss on the reference fixture") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const auto f = retort::test::load_loss_fixture("dkd");
    CHECK(f.meta("reference").find("mdistiller") != std::string::npos);
    Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
    Tensor y = f.reference("input.labels").to(DType::i64);
    const transfer::DkdOptions o{f.number("alpha"), f.number("beta"), f.number("T")};
    if (dtype == DType::f64) {
      check_close(transfer::dkd_target_loss(s, t, y, o.temperature), f.reference("extra.tckd").to_vector(), 1e-12);
      check_close(transfer::dkd_non_target_loss(s, t, y, o.temperature), f.reference("extra.nckd").to_vector(),
                  1e-12);
    }
    retort::test::check_loss_fixture(f, transfer::dkd_loss(s, t, y, o), {{"student", s}}, dtype);
  }
}

TEST_CASE("dkd: the warm-up ramps the term over the first epochs") {
  transfer::LossWarmup w{20.0, transfer::WarmupGranularity::epoch};
  CHECK(w.factor({0, 0, 100}) == doctest::Approx(1.0 / 20));    // mdistiller: epoch 1 -> 1/20
  CHECK(w.factor({0, 99, 100}) == doctest::Approx(1.0 / 20));   // constant within the epoch
  CHECK(w.factor({9, 5, 100}) == doctest::Approx(10.0 / 20));
  CHECK(w.factor({25, 0, 100}) == 1.0);
  transfer::LossWarmup step{0.5, transfer::WarmupGranularity::step};
  CHECK(step.factor({0, 9, 100}) == doctest::Approx(0.1 / 0.5));  // 10 of 100 batches done
  CHECK(step.factor({0, 49, 100}) == 1.0);
  CHECK(step.factor({3, 0, 100}) == 1.0);
  CHECK(transfer::LossWarmup{0.0, transfer::WarmupGranularity::epoch}.factor({0, 0, 0}) == 1.0);
  // through a term: the loss at the first step of epoch 1 is 1/20 of the loss without warm-up
  auto resnet = models::create_model("resnet8", retort::test::fmnist_config(11));
  auto wrn = models::create_model("wrn_16_2", retort::test::fmnist_config(12));
  auto term = retort::test::build_term("{ name = \"dkd\", teacher = \"t\" }", resnet, wrn);
  auto no_ramp = retort::test::build_term("{ name = \"dkd\", teacher = \"t\", warmup_epochs = 0 }", resnet, wrn);
  auto step_ = retort::test::forward_step(*resnet, *wrn, random_tensor({3, 1, 28, 28}, 305, -1, 1, DType::f32));
  step_.y = labels_of({1, 7, 9});
  transfer::StepInputs in = step_.inputs();
  const double full = no_ramp->compute(in).item();
  CHECK(full > 0);
  CHECK(term->compute(in).item() == doctest::Approx(full / 20).epsilon(1e-6));
  in.clock = {19, 0, 10};
  CHECK(term->compute(in).item() == doctest::Approx(full).epsilon(1e-6));
}

TEST_CASE("dkd: registry defaults, resnet8 <- wrn_16_2, and the errors") {
  auto resnet = models::create_model("resnet8", retort::test::fmnist_config(13));
  auto wrn = models::create_model("wrn_16_2", retort::test::fmnist_config(14));
  auto vit = models::create_model("vit_tiny", retort::test::fmnist_config(15));
  const Recipe r = retort::test::loss_recipe("{ name = \"dkd\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kDkdDefaultWeight);
  auto term = retort::test::build_term("{ name = \"dkd\", teacher = \"t\" }", resnet, wrn);
  auto* dkd = dynamic_cast<transfer::DkdLoss*>(term.get());
  REQUIRE(dkd != nullptr);
  CHECK(dkd->options().alpha == 1.0);
  CHECK(dkd->options().beta == 8.0);
  CHECK(dkd->options().temperature == 4.0);
  CHECK(dkd->warmup().epochs == 20.0);
  CHECK(dkd->warmup().granularity == transfer::WarmupGranularity::epoch);
  CHECK(term->needs_labels());
  CHECK(term->teachers() == std::vector<std::string>{"t"});
  retort::test::check_trains_student(*term, *resnet, *wrn, {.batch = 3, .seed = 98, .labels = labels_of({0, 5, 9})});
  // logits only: a ViT student or teacher works as any other
  auto v = retort::test::build_term("{ name = \"dkd\", teacher = \"t\", warmup_granularity = \"step\" }", vit, wrn);
  retort::test::check_trains_student(*v, *vit, *wrn, {.batch = 3, .seed = 99, .labels = labels_of({2, 2, 8})});
  CHECK_THROWS_WITH_AS(retort::test::loss_recipe("{ name = \"dkd\", teacher = \"t\", warmup_granularity = \"batch\" }"),
                       doctest::Contains("warmup_granularity"), Error);
  CHECK_THROWS_WITH_AS(retort::test::build_term("{ name = \"dkd\", teacher = \"t\", alpha = 0, beta = 0 }", resnet, wrn),
                       doctest::Contains("p.toml:11: dkd: alpha and beta are both 0"), Error);
  auto step_ = retort::test::forward_step(*resnet, *wrn, random_tensor({2, 1, 28, 28}, 306, -1, 1, DType::f32));
  CHECK_THROWS_WITH_AS(term->compute(step_.inputs()), doctest::Contains("'dkd' needs labels"), Error);
}
