// DIST (inter- and intra-class Pearson relations): a hand-computed example, f64 gradient checks,
// the authors' DIST on the reference fixture, the registry and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/dist.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

TEST_CASE("dist: hand-computed correlations and loss") {
  // Logits z = T ln(p) make softmax(z / T) = p exactly. Student rows p_s = [1/2, 1/4, 1/4] and
  // [1/4, 1/2, 1/4], teacher rows p_t = [1/4, 1/2, 1/4] and [1/2, 1/4, 1/4].
  // Inter (rows): centred s_0 = [1/6, -1/12, -1/12], t_0 = [-1/12, 1/6, -1/12]: <s, t> = -3/144,
  //   ||s|| ||t|| = 6/144, so rho = -(3/144) / (6/144 + 1e-8) (about -1/2); row 1 is the same.
  //   inter = 1 - rho.
  // Intra (columns over the batch): column 0 centred s = [1/8, -1/8], t = [-1/8, 1/8]: rho =
  //   -(1/32) / (1/32 + 1e-8); column 1 the same; column 2 is constant (0 / (0 + 1e-8) = 0).
  //   intra = 1 - 2 rho_c / 3.
  auto logits = [](std::vector<double> p, double T) {
    for (double& v : p) v = T * std::log(v);
    return Tensor::from_vector(p, {2, 3}, DType::f64);
  };
  const double eps = transfer::kDistEps;
  const double rho_row = -(3.0 / 144) / (6.0 / 144 + eps), rho_col = -(1.0 / 32) / (1.0 / 32 + eps);
  const double inter = 1 - rho_row, intra = 1 - 2 * rho_col / 3;
  for (double T : {1.0, 2.0}) {
    Tensor s = logits({0.5, 0.25, 0.25, 0.25, 0.5, 0.25}, T);
    Tensor t = logits({0.25, 0.5, 0.25, 0.5, 0.25, 0.25}, T);
    check_close(transfer::dist_inter_loss(s, t, T), {T * T * inter}, 1e-12);
    check_close(transfer::dist_intra_loss(s, t, T), {T * T * intra}, 1e-12);
    check_close(transfer::dist_loss(s, t, {.beta = 1.0, .gamma = 2.0, .temperature = T}),
                {T * T * (inter + 2 * intra)}, 1e-12);
  }
  // a vector with itself: centred [-4/3, -1/3, 5/3], squared norm 42/9, so rho = n / (n + 1e-8)
  Tensor v = Tensor::from_vector({1, 2, 4}, {1, 3}, DType::f64);
  check_close(transfer::dist_row_pearson(v, v), {(42.0 / 9) / (42.0 / 9 + eps)}, 1e-15);
  // correlation is invariant to affine changes of the rows (Pearson): row-wise correlations of
  // [1, 2, 4] and [3, 5, 9] (= 2x + 1) are 1
  Tensor a = Tensor::from_vector({1, 2, 4}, {1, 3}, DType::f64);
  check_close(transfer::dist_row_pearson(a, add(mul(a, 2.0), 1.0)), {1.0}, 1e-8);
}

TEST_CASE("dist: gradient checks w.r.t. the student logits") {
  Tensor t = random_tensor({4, 5}, 402, -2, 2);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::dist_loss(in[0], t); },
                          {random_tensor({4, 5}, 403, -2, 2)});
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) { return transfer::dist_loss(in[0], t, {.gamma = 0, .temperature = 1}); },
      {random_tensor({4, 5}, 404, -2, 2)});
}

TEST_CASE("dist: matches the authors' DIST on the reference fixture") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const auto f = retort::test::load_loss_fixture("dist");
    CHECK(f.meta("reference").find("image_classification_sota") != std::string::npos);
    Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
    const transfer::DistOptions o{f.number("beta"), f.number("gamma"), f.number("T")};
    if (dtype == DType::f64) {
      check_close(transfer::dist_inter_loss(s, t, o.temperature), f.reference("extra.inter").to_vector(), 1e-12);
      check_close(transfer::dist_intra_loss(s, t, o.temperature), f.reference("extra.intra").to_vector(), 1e-12);
    }
    retort::test::check_loss_fixture(f, transfer::dist_loss(s, t, o), {{"student", s}}, dtype);
  }
}

TEST_CASE("dist: registry defaults, resnet8 and vit students, and the errors") {
  auto resnet = models::create_model("resnet8", retort::test::fmnist_config(21));
  auto wrn = models::create_model("wrn_16_2", retort::test::fmnist_config(22));
  auto vit = models::create_model("vit_tiny", retort::test::fmnist_config(23));
  const Recipe r = retort::test::loss_recipe("{ name = \"dist\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kDistDefaultWeight);
  auto term = retort::test::build_term("{ name = \"dist\", teacher = \"t\" }", resnet, wrn);
  auto* d = dynamic_cast<transfer::DistLoss*>(term.get());
  REQUIRE(d != nullptr);
  CHECK(d->options().temperature == 4.0);
  CHECK(d->options().beta == 1.0);
  CHECK(d->options().gamma == 1.0);
  CHECK_FALSE(term->needs_labels());
  retort::test::check_trains_student(*term, *resnet, *wrn, {.batch = 3, .seed = 98});
  auto v = retort::test::build_term("{ name = \"dist\", teacher = \"t\", T = 1 }", vit, wrn);
  retort::test::check_trains_student(*v, *vit, *wrn, {.batch = 3, .seed = 99});
  CHECK_THROWS_WITH_AS(retort::test::build_term("{ name = \"dist\", teacher = \"t\", beta = 0, gamma = 0 }", resnet, wrn),
                       doctest::Contains("p.toml:11: dist: beta and gamma are both 0"), Error);
  CHECK_THROWS_WITH_AS(transfer::dist_loss(random_tensor({1, 5}, 405), random_tensor({1, 5}, 406)),
                       doctest::Contains("at least two examples"), Error);
  CHECK_THROWS_WITH_AS(retort::test::loss_recipe("{ name = \"dist\", teacher = \"t\", T = 0 }"),
                       doctest::Contains("'T'"), Error);
}
