// RKD: distances and angles of hand-placed triangles, f64 gradient checks, the torchdistill /
// RepDistiller reference fixture, ResNet <-> ViT through the registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/rkd.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {
double huber(double d) { return std::abs(d) < 1 ? 0.5 * d * d : std::abs(d) - 0.5; }
}  // namespace

TEST_CASE("rkd: distances and angles of hand-placed triangles") {
  // student: (0,0), (3,0), (0,4), a 3-4-5 triangle; off-diagonal mean (3+4+5)/3 = 4
  //   psi_s / mu_s: (0,1) 3/4, (0,2) 1, (1,2) 5/4
  // teacher: (0,0), (1,0), (0,1); distances 1, 1, sqrt2, mean (2+sqrt2)/3
  //   psi_t / mu_t: (0,1) and (0,2) 3/(2+sqrt2) = 3 - 1.5 sqrt2, (1,2) 3sqrt2/(2+sqrt2) = 3sqrt2 - 3
  // every |difference| < 1, so SmoothL1 = d^2/2; each pair counts twice, the diagonal 0, over 9:
  //   L_D = (a^2 + b^2 + c^2) / 9,  a = 3/4 - (3 - 1.5sqrt2), b = 1 - (3 - 1.5sqrt2), c = 5/4 - (3sqrt2 - 3)
  Tensor s = Tensor::from_vector({0, 0, 3, 0, 0, 4}, {3, 2}, DType::f64);
  Tensor t = Tensor::from_vector({0, 0, 1, 0, 0, 1}, {3, 2}, DType::f64);
  const double r2 = std::sqrt(2.0);
  check_close(transfer::rkd_pairwise_distances(s), {0, 3, 4, 3, 0, 5, 4, 5, 0}, 1e-12);
  check_close(transfer::rkd_normalized_distances(s), {0, 0.75, 1, 0.75, 0, 1.25, 1, 1.25, 0}, 1e-12);
  const double a = 0.75 - (3 - 1.5 * r2), b = 1 - (3 - 1.5 * r2), c = 1.25 - (3 * r2 - 3);
  const double distance = (a * a + b * b + c * c) / 9;
  check_close(transfer::rkd_distance_loss(s, t), {distance}, 1e-12);

  // angles A(i,j,k) = cos of the angle at vertex i between j and k (j, k != i); A(i,j,j) = 1; 0 when j or k = i.
  //   student: vertex 0: 0 (right angle), vertex 1: (-3,0).(-3,4)/(3*5) = 0.6, vertex 2: (0,-4).(3,-4)/(4*5) = 0.8
  //   teacher: vertex 0: 0, vertex 1: 1/sqrt2, vertex 2: 1/sqrt2
  // each off-diagonal cosine appears twice ((j,k) and (k,j)), all |d| < 1, over 27 entries:
  //   L_A = ((0.6 - 1/sqrt2)^2 + (0.8 - 1/sqrt2)^2) / 27
  check_close(transfer::rkd_angles(s),
              {0, 0, 0, 0, 1, 0, 0, 0, 1,  1, 0, 0.6, 0, 0, 0, 0.6, 0, 1,  1, 0.8, 0, 0.8, 1, 0, 0, 0, 0}, 1e-12);
  const double angle = (std::pow(0.6 - 1 / r2, 2) + std::pow(0.8 - 1 / r2, 2)) / 27;
  check_close(transfer::rkd_angle_loss(s, t), {angle}, 1e-12);
  // total with RepDistiller's weights 25 and 50; each weight alone; a scaled student is the same
  check_close(transfer::rkd_loss(s, t), {25 * distance + 50 * angle}, 1e-12);
  check_close(transfer::rkd_loss(s, t, {2.0, 0.0}), {2 * distance}, 1e-12);
  check_close(transfer::rkd_loss(s, t, {0.0, 3.0}), {3 * angle}, 1e-12);
  check_close(transfer::rkd_loss(mul(s, 7.0), t), {25 * distance + 50 * angle}, 1e-12);
  // maps are flattened: [3, 2, 1, 1] is the same as [3, 2]
  check_close(transfer::rkd_loss(s.reshape({3, 2, 1, 1}), t.reshape({3, 1, 2, 1})), {25 * distance + 50 * angle},
              1e-12);

  // the linear branch of SmoothL1: a collinear student (0,0), (1,0), (2,0) against the same teacher
  //   student cosines: vertex 0: 1, vertex 1: -1, vertex 2: 1; differences 1, -1 - 1/sqrt2, 1 - 1/sqrt2
  //   L_A = 2 (huber(1) + huber(-1 - 1/sqrt2) + huber(1 - 1/sqrt2)) / 27
  //       = 2 (0.5 + 0.5 + 1/sqrt2 + (1-1/sqrt2)^2/2) / 27
  Tensor line = Tensor::from_vector({0, 0, 1, 0, 2, 0}, {3, 2}, DType::f64);
  const double line_angle = 2 * (huber(1) + huber(-1 - 1 / r2) + huber(1 - 1 / r2)) / 27;
  CHECK(line_angle == doctest::Approx(2 * (1 + 1 / r2 + 0.5 * std::pow(1 - 1 / r2, 2)) / 27).epsilon(1e-14));
  check_close(transfer::rkd_angle_loss(line, t), {line_angle}, 1e-12);
}

TEST_CASE("rkd: gradient checks w.r.t. the student features (f64)") {
  Tensor t = random_tensor({5, 3}, 12);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::rkd_distance_loss(in[0], t); },
                          {random_tensor({5, 4}, 11)});
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::rkd_angle_loss(in[0], t); },
                          {random_tensor({5, 4}, 13)});
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::rkd_loss(in[0], t); },
                          {random_tensor({5, 4}, 14)});
  // the pieces: distances (including the diagonal's zero gradient) and angles as tensors
  retort::test::gradcheck([](const std::vector<Tensor>& in) { return transfer::rkd_normalized_distances(in[0]); },
                          {random_tensor({4, 3}, 15)});
  retort::test::gradcheck([](const std::vector<Tensor>& in) { return transfer::rkd_angles(in[0]); },
                          {random_tensor({4, 3}, 16)});
  // a map student against a vector teacher
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::rkd_loss(in[0], t); },
                          {random_tensor({5, 2, 2, 2}, 17)});
  // the teacher is a constant
  Tensor s = random_tensor({5, 4}, 18).requires_grad_();
  Tensor tt = t.detach().clone().requires_grad_();
  transfer::rkd_loss(s, tt).backward();
  CHECK(s.grad().defined());
  CHECK_FALSE(tt.grad().defined());
}

TEST_CASE("rkd: matches torchdistill's RKDLoss (= RepDistiller's RKD.py) on the reference fixture") {
  const auto f = retort::test::load_loss_fixture("rkd");
  REQUIRE(f.number("distance_weight") == 25.0);
  REQUIRE(f.number("angle_weight") == 50.0);
  for (DType dtype : {DType::f64, DType::f32}) {
    Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
    const double tol = retort::test::loss_fixture_tolerance(dtype);
    retort::test::check_matches("distance", transfer::rkd_distance_loss(s, t).detach(),
                                f.reference("extra.distance").to(dtype), tol);
    retort::test::check_matches("angle", transfer::rkd_angle_loss(s, t).detach(), f.reference("extra.angle").to(dtype),
                                tol);
    retort::test::check_loss_fixture(f, transfer::rkd_loss(s, t), {{"student", s}, {"teacher", t}}, dtype);
  }
}

TEST_CASE("rkd: pooled features across architectures (resnet8 <-> vit_tiny) through the registry") {
  auto resnet = models::create_model("resnet8", fmnist_config(1));
  auto vit = models::create_model("vit_tiny", fmnist_config(2));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(3));
  const std::string term = "{ name = \"rkd\", teacher = \"t\" }";
  auto r2v = build_term(term, resnet, vit);  // resnet8 pooled [B, 64] vs ViT pooled (CLS) [B, 192]
  CHECK(r2v->student_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teacher_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teachers() == std::vector<std::string>{"t"});
  CHECK(r2v->parameters().empty());
  check_trains_student(*r2v, *resnet, *vit, {.batch = 4, .seed = 77, .finite_grads = true});
  auto v2r = build_term(term, vit, wrn);  // vit was the teacher above: it has no gradients yet
  check_trains_student(*v2r, *vit, *wrn, {.batch = 4, .seed = 77, .finite_grads = true});
  // token and map taps are flattened: ViT tokens.1 [B, 50, 192] against resnet8's stage3 [B, 64, 7, 7]
  auto vit2 = models::create_model("vit_tiny", fmnist_config(6));
  auto resnet2 = models::create_model("resnet8", fmnist_config(7));
  auto tokens = build_term("{ name = \"rkd\", teacher = \"t\", student_tap = \"tokens.1\", teacher_tap = \"stage3\" }",
                           vit2, resnet2);
  check_trains_student(*tokens, *vit2, *resnet2, {.batch = 4, .seed = 77, .finite_grads = true});
}

TEST_CASE("rkd: schema, defaults and errors") {
  const LossSchema* schema = find_loss_schema("rkd");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 1.0);
  CHECK(std::get<double>(*schema->find("distance_weight")->default_value) == 25.0);
  CHECK(std::get<double>(*schema->find("angle_weight")->default_value) == 50.0);
  CHECK(std::get<std::string>(*schema->find("student_tap")->default_value) == "pooled");
  auto student = models::create_model("resnet8", fmnist_config(4));
  auto teacher = models::create_model("wrn_16_2", fmnist_config(5));
  auto loss =
      build_term("{ name = \"rkd\", teacher = \"t\", distance_weight = 1.0, angle_weight = 2.0 }", student, teacher);
  auto* rkd = dynamic_cast<transfer::RkdLoss*>(loss.get());
  REQUIRE(rkd != nullptr);
  CHECK(rkd->options().distance_weight == 1.0);
  CHECK(rkd->options().angle_weight == 2.0);
  // a wrong tap names itself, the model's taps and the recipe line
  CHECK_THROWS_WITH_AS(build_term("{ name = \"rkd\", teacher = \"t\", student_tap = \"stage7\" }", student, teacher),
                       doctest::Contains("p.toml:11: rkd: the student (resnet-cifar) has no tap 'stage7'; its "
                                         "taps are"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"rkd\", teacher = \"t\", teacher_tap = \"cls\" }", student, teacher),
                       doctest::Contains("teacher 't' (wrn) has no tap 'cls'"), Error);
  // bad values are rejected when the recipe is read
  CHECK_THROWS_WITH_AS(build_term("{ name = \"rkd\", teacher = \"t\", angle_weight = -1.0 }", student, teacher),
                       doctest::Contains("key 'angle_weight'"), Error);
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"rkd\", teacher = \"t\", distance_weight = 0.0, angle_weight = 0.0 }", student, teacher),
      doctest::Contains("p.toml:11: rkd: distance_weight and angle_weight are both 0"), Error);
  // one example has no pairs
  Tensor one = random_tensor({1, 4}, 19);
  CHECK_THROWS_WITH_AS(transfer::rkd_loss(one, one), doctest::Contains("at least 2"), Error);
}
