// CC: both forms on hand-made embeddings, the Gaussian Taylor kernel against exp(-gamma d^2), f64
// gradient checks through both learned embeddings, the RepDistiller and torchdistill reference
// fixtures, ResNet <-> ViT through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/cc.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {
// One step through the registry's term (check_trains_student, finite student gradients): both
// embeddings get nonzero gradients too.
void check_trains_student_and_embeddings(transfer::Loss& loss, models::Model& student, models::Model& teacher) {
  check_trains_student(loss, student, teacher, {.batch = 4, .finite_grads = true});
  auto params = loss.parameters();
  REQUIRE(params.size() == 4);
  for (const auto& [n, p] : params) {
    INFO("parameter " << n);
    REQUIRE(p.grad().defined());
    double norm = 0;
    for (double g : p.grad().to_vector()) norm += g * g;
    CHECK(norm > 0);
  }
}

Tensor identity_matrix(int64_t n) {
  std::vector<double> v(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  return Tensor::from_vector(v, {n, n}, DType::f64);
}
}  // namespace

TEST_CASE("cc: both forms on hand-made embeddings") {
  // RepDistiller's form: e_s = [[1,2],[0,-1],[3,1]], e_t = [[0,0],[1,1],[1,-1]]
  //   delta = |e_s - e_t| = [[1,2],[1,2],[2,2]]; pairs (0,1): 1*1 + 2*2 = 5, (1,2): 1*2 + 2*2 = 6; mean 5.5
  Tensor es = Tensor::from_vector({1, 2, 0, -1, 3, 1}, {3, 2}, DType::f64);
  Tensor et = Tensor::from_vector({0, 0, 1, 1, 1, -1}, {3, 2}, DType::f64);
  check_close(transfer::cc_adjacent_loss(es, et), {5.5}, 1e-12);
  // only neighbours in batch order count: swapping rows 0 and 2 of both gives delta [[2,2],[1,2],[1,2]]: (2+4 + 1+4)/2
  Tensor perm = Tensor::from_i64({2, 1, 0}, {3});
  check_close(transfer::cc_adjacent_loss(index_select(es, 0, perm), index_select(et, 0, perm)), {5.5}, 1e-12);
  Tensor perm2 = Tensor::from_i64({1, 0, 2}, {3});  // delta [[1,2],[1,2],[2,2]] again: same
  check_close(transfer::cc_adjacent_loss(index_select(es, 0, perm2), index_select(et, 0, perm2)), {5.5}, 1e-12);
  Tensor perm3 = Tensor::from_i64({0, 2, 1}, {3});  // delta [[1,2],[2,2],[1,2]]: (2+4 + 2+4)/2 = 6
  check_close(transfer::cc_adjacent_loss(index_select(es, 0, perm3), index_select(et, 0, perm3)), {6.0}, 1e-12);

  // kernel form, B = 2: e_s = [[1,0],[0,1]] (G_s = I), e_t = [[1,1],[0,1]] (G_t = [[2,1],[1,1]])
  Tensor ks = Tensor::from_vector({1, 0, 0, 1}, {2, 2}, DType::f64);
  Tensor kt = Tensor::from_vector({1, 1, 0, 1}, {2, 2}, DType::f64);
  //   bilinear: C = G, C_s - C_t = [[-1,-1],[-1,0]], ||.||_F = sqrt3, / B^2 = sqrt3 / 4
  check_close(transfer::cc_correlation_matrix(kt, transfer::CcKernel::bilinear), {2, 1, 1, 1}, 1e-12);
  check_close(transfer::cc_kernel_loss(ks, kt, transfer::CcKernel::bilinear), {std::sqrt(3.0) / 4}, 1e-12);
  //   gaussian, gamma 0.5, max_p 2: C = e^-1 (1 + g + g^2/2): g = 0 -> e^-1, 1 -> 2.5 e^-1, 2 -> 5 e^-1
  //   C_s - C_t = e^-1 [[2.5 - 5, 1 - 2.5], [1 - 2.5, 0]] -> ||.||_F = e^-1 sqrt(6.25 + 2 * 2.25) = e^-1 sqrt(10.75)
  const double e1 = std::exp(-1.0);
  check_close(transfer::cc_correlation_matrix(kt, transfer::CcKernel::gaussian, 0.5, 2),
              {5 * e1, 2.5 * e1, 2.5 * e1, 2.5 * e1}, 1e-12);
  check_close(transfer::cc_kernel_loss(ks, kt, transfer::CcKernel::gaussian, 0.5, 2), {e1 * std::sqrt(10.75) / 4},
              1e-12);
  //   max_p 3 adds g^3 / 6: g = 1 -> 2.5 + 1/6, 2 -> 5 + 8/6; differences -11/3, -5/3, -5/3, 0 -> e^-1 sqrt(171/9)
  check_close(transfer::cc_kernel_loss(ks, kt, transfer::CcKernel::gaussian, 0.5, 3), {e1 * std::sqrt(19.0) / 4},
              1e-12);
  // identical correlations: zero, and a zero (not NaN) gradient
  Tensor same = ks.detach().clone().requires_grad_();
  Tensor zero = transfer::cc_kernel_loss(same, ks, transfer::CcKernel::bilinear);
  CHECK(zero.item() < 1e-18);
  zero.backward();
  for (double g : same.grad().to_vector()) CHECK(g == 0.0);
}

TEST_CASE("cc: the gaussian Taylor kernel approaches exp(-gamma ||e_i - e_j||^2) on unit vectors") {
  // for unit rows exp(-gamma ||x - y||^2) = exp(-2 gamma) exp(2 gamma x.y); a long series converges to it
  Tensor e = l2_normalize(random_tensor({4, 3}, 5), 1);
  Tensor c = transfer::cc_correlation_matrix(e, transfer::CcKernel::gaussian, 0.4, 30);
  check_close(c, exp(mul(pairwise_sq_dist(e, e), -0.4)).to_vector(), 1e-12);
  // max_p 2 (the default) stays within the series' remainder, at most e^-0.8 (e^0.8 - 1 - 0.8 - 0.32) = 0.0475
  // (reached at x.y = 1, the diagonal), and below the exact kernel (every dropped term of x.y = 1 is positive)
  Tensor c2 = transfer::cc_correlation_matrix(e, transfer::CcKernel::gaussian, 0.4, 2);
  auto a = c2.to_vector(), b = c.to_vector();
  for (size_t k = 0; k < a.size(); ++k) CHECK(std::abs(a[k] - b[k]) <= 0.0476);
  for (int64_t i = 0; i < 4; ++i) CHECK(a[size_t(i * 5)] == doctest::Approx(std::exp(-0.8) * 2.12).epsilon(1e-12));
}

TEST_CASE("cc: the loss through identity embeddings equals the hand value; embeddings as configured") {
  transfer::CcOptions o;
  o.feat_dim = 2;
  transfer::CcLoss loss("t", "pooled", "pooled", 2, 2, o, Device::cpu(), DType::f64, 0);
  loss.embed_s().weight.copy_(identity_matrix(2));
  loss.embed_t().weight.copy_(identity_matrix(2));
  loss.embed_s().bias.zero_();
  loss.embed_t().bias.fill_(1.0);  // e_t = f_t + 1
  Tensor fs = Tensor::from_vector({1, 2, 0, -1, 3, 1}, {3, 2}, DType::f64);
  Tensor ft = Tensor::from_vector({-1, -1, 0, 0, 0, -2}, {3, 2}, DType::f64);  // + 1 = the e_t above
  check_close(loss.compute(fs, ft), {5.5}, 1e-12);
  // maps are flattened: [3, 2, 1, 1] features are the same
  check_close(loss.compute(fs.reshape({3, 2, 1, 1}), ft.reshape({3, 1, 1, 2})), {5.5}, 1e-12);
  auto params = loss.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0].first == "embed_s.weight");
  CHECK(params[1].first == "embed_s.bias");
  CHECK(params[2].first == "embed_t.weight");
  CHECK(params[3].first == "embed_t.bias");
  // default construction: D -> 128 embeddings of each side's width, PyTorch's default init bound 1/sqrt(D)
  transfer::CcLoss big("t", "pooled", "pooled", 64, 128, {}, Device::cpu(), DType::f32, 3);
  CHECK(big.embed_s().weight.shape() == Shape{128, 64});
  CHECK(big.embed_t().weight.shape() == Shape{128, 128});
  for (double w : big.embed_s().weight.to_vector()) CHECK(std::abs(w) <= 1 / std::sqrt(64.0));
  // normalize: unit embeddings
  transfer::CcOptions n;
  n.normalize = true;
  n.feat_dim = 5;
  transfer::CcLoss unit("t", "pooled", "pooled", 3, 4, n, Device::cpu(), DType::f64, 1);
  auto [us, ut] = unit.embed(random_tensor({3, 3}, 6), random_tensor({3, 4}, 7));
  check_close(sum(mul(us, us), {1}), {1, 1, 1}, 1e-12);
  check_close(sum(mul(ut, ut), {1}), {1, 1, 1}, 1e-12);
}

TEST_CASE("cc: gradient checks w.r.t. the student features and both embeddings (f64)") {
  struct Case {
    const char* what;
    transfer::CcOptions o;
  };
  transfer::CcOptions rd, gauss, bilinear, unit;
  rd.feat_dim = gauss.feat_dim = bilinear.feat_dim = unit.feat_dim = 3;
  gauss.form = bilinear.form = unit.form = transfer::CcForm::kernel;
  bilinear.kernel = transfer::CcKernel::bilinear;
  unit.normalize = true;
  unit.max_p = 3;
  for (const Case& c : {Case{"repdistiller", rd}, Case{"kernel gaussian", gauss}, Case{"kernel bilinear", bilinear},
                        Case{"kernel gaussian, normalize, max_p 3", unit}}) {
    INFO(c.what);
    transfer::CcLoss loss("t", "pooled", "pooled", 4, 5, c.o, Device::cpu(), DType::f64, 11);
    Tensor ft = random_tensor({4, 5}, 41);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) {
          loss.embed_s().weight = in[1];
          loss.embed_s().bias = in[2];
          loss.embed_t().weight = in[3];
          loss.embed_t().bias = in[4];
          return loss.compute(in[0], ft);
        },
        {random_tensor({4, 4}, 42), random_tensor({3, 4}, 43), random_tensor({3}, 44), random_tensor({3, 5}, 45),
         random_tensor({3}, 46)});
  }
  // the teacher's features are constants; its embedding learns
  transfer::CcLoss loss("t", "pooled", "pooled", 4, 5, rd, Device::cpu(), DType::f64, 12);
  Tensor fs = random_tensor({4, 4}, 47).requires_grad_();
  Tensor ft = random_tensor({4, 5}, 48).requires_grad_();
  loss.compute(fs, ft).backward();
  CHECK(fs.grad().defined());
  CHECK_FALSE(ft.grad().defined());
  CHECK(loss.embed_t().weight.grad().defined());
}

TEST_CASE("cc: matches RepDistiller's Correlation and torchdistill's CCKDLoss on the reference fixtures") {
  for (const char* name : {"cc", "cc_kernel", "cc_kernel_bilinear"}) {
    const auto f = retort::test::load_loss_fixture(name);
    transfer::CcOptions o;
    o.feat_dim = int64_t(f.number("feat_dim"));
    o.form = transfer::parse_cc_form(f.meta("form"));
    if (o.form == transfer::CcForm::kernel) {
      REQUIRE(f.meta("reduction") == "batchmean");
      o.kernel = transfer::parse_cc_kernel(f.meta("kernel"));
      o.gamma = f.number("gamma");
      o.max_p = int64_t(f.number("max_p"));
    }
    for (DType dtype : {DType::f64, DType::f32}) {
      Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
      transfer::CcLoss loss("t", "pooled", "pooled", s.size(1), t.size(1), o, Device::cpu(), dtype, 0);
      std::map<std::string, Tensor> inputs{{"student", s}, {"teacher", t}};
      for (const char* key : {"embed_s.weight", "embed_s.bias", "embed_t.weight", "embed_t.bias"})
        inputs[key] = f.input(key, dtype);
      loss.embed_s().weight = inputs["embed_s.weight"];
      loss.embed_s().bias = inputs["embed_s.bias"];
      loss.embed_t().weight = inputs["embed_t.weight"];
      loss.embed_t().bias = inputs["embed_t.bias"];
      auto [e_s, e_t] = loss.embed(s, t);
      const double tol = retort::test::loss_fixture_tolerance(dtype);
      retort::test::check_matches("e_s", e_s.detach(), f.reference("extra.e_s").to(dtype), tol);
      retort::test::check_matches("e_t", e_t.detach(), f.reference("extra.e_t").to(dtype), tol);
      retort::test::check_loss_fixture(f, loss.compute(s, t), inputs, dtype);
    }
  }
}

TEST_CASE("cc: pooled features across architectures (resnet8 <-> vit_tiny) through the registry") {
  auto resnet = models::create_model("resnet8", fmnist_config(1));
  auto vit = models::create_model("vit_tiny", fmnist_config(2));
  auto r2v = build_term("{ name = \"cc\", teacher = \"t\" }", resnet, vit);
  CHECK(r2v->student_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teacher_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teachers() == std::vector<std::string>{"t"});
  auto* cc = dynamic_cast<transfer::CcLoss*>(r2v.get());
  REQUIRE(cc != nullptr);
  CHECK(cc->embed_s().weight.shape() == Shape{128, 64});   // resnet8 pooled
  CHECK(cc->embed_t().weight.shape() == Shape{128, 192});  // ViT pooled (CLS)
  check_trains_student_and_embeddings(*r2v, *resnet, *vit);
  // fresh models: a teacher must end without gradients
  auto vit_student = models::create_model("vit_tiny", fmnist_config(3));
  auto resnet_teacher = models::create_model("resnet8", fmnist_config(4));
  auto v2r = build_term("{ name = \"cc\", teacher = \"t\", form = \"kernel\" }", vit_student, resnet_teacher);
  check_trains_student_and_embeddings(*v2r, *vit_student, *resnet_teacher);
  // a token tap is flattened into the embedding: tokens.0 [B, 50, 192] -> 9600 inputs
  auto tokens =
      build_term("{ name = \"cc\", teacher = \"t\", teacher_tap = \"tokens.0\", feat_dim = 16 }", resnet, vit);
  CHECK(dynamic_cast<transfer::CcLoss*>(tokens.get())->embed_t().weight.shape() == Shape{16, 9600});
}

TEST_CASE("cc: schema, defaults and errors") {
  const LossSchema* schema = find_loss_schema("cc");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 0.02);
  CHECK(std::get<std::string>(*schema->find("form")->default_value) == "repdistiller");
  CHECK(std::get<int64_t>(*schema->find("feat_dim")->default_value) == 128);
  CHECK(std::get<std::string>(*schema->find("kernel")->default_value) == "gaussian");
  CHECK(std::get<double>(*schema->find("gamma")->default_value) == 0.4);
  CHECK(std::get<int64_t>(*schema->find("max_p")->default_value) == 2);
  CHECK(std::get<bool>(*schema->find("normalize")->default_value) == false);
  auto student = models::create_model("resnet8", fmnist_config(4));
  auto teacher = models::create_model("wrn_16_2", fmnist_config(5));
  auto loss = build_term("{ name = \"cc\", teacher = \"t\", form = \"kernel\", kernel = \"bilinear\", feat_dim = 32 }",
                         student, teacher);
  auto* cc = dynamic_cast<transfer::CcLoss*>(loss.get());
  REQUIRE(cc != nullptr);
  CHECK(cc->options().form == transfer::CcForm::kernel);
  CHECK(cc->options().kernel == transfer::CcKernel::bilinear);
  CHECK(cc->embed_t().weight.shape() == Shape{32, 128});  // wrn_16_2 pooled is 128 wide
  CHECK_THROWS_WITH_AS(build_term("{ name = \"cc\", teacher = \"t\", teacher_tap = \"stage9\" }", student, teacher),
                       doctest::Contains("p.toml:11: cc: the teacher 't' (wrn) has no tap 'stage9'; its taps are"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"cc\", teacher = \"t\", form = \"pairs\" }", student, teacher),
                       doctest::Contains("key 'form'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"cc\", teacher = \"t\", feat_dim = 0 }", student, teacher),
                       doctest::Contains("key 'feat_dim'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"cc\", teacher = \"t\", max_p = 0 }", student, teacher),
                       doctest::Contains("key 'max_p'"), Error);
  Tensor one = random_tensor({1, 3}, 8);
  CHECK_THROWS_WITH_AS(transfer::cc_adjacent_loss(one, one), doctest::Contains("at least 2"), Error);
}
