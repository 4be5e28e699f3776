// Alignment/uniformity: value on hand-worked unit vectors, gradient checks (core and through
// the projection heads), the teacher head trains while the teacher features stay frozen.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "train/recipe_schema.h"
#include "transfer/align_uniform.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

TEST_CASE("align_uniform: value on hand-worked unit vectors") {
  // z_s = (1,0), (0,1), (-1,0);  z_t = (1,0), (0,1), (0,-1)
  // align = (0 + 0 + ||(-1,0) - (0,-1)||^2) / 3 = 2/3
  // unif(z_s): pair distances^2 (0,1): 2, (0,2): 4, (1,2): 2 -> log((e^-4 + e^-8 + e^-4) / 3) with t = 2
  // unif(z_t): (0,1): 2, (0,2): 2, (1,2): 4 -> the same value
  // L = 2/3 + log((2 e^-4 + e^-8) / 3) = -3.72968230
  Tensor zs = Tensor::from_vector({1, 0, 0, 1, -1, 0}, {3, 2}, DType::f64);
  Tensor zt = Tensor::from_vector({1, 0, 0, 1, 0, -1}, {3, 2}, DType::f64);
  check_close(transfer::alignment_loss(zs, zt), {2.0 / 3.0}, 1e-12);
  check_close(transfer::uniformity_loss(zs, 2.0), {std::log((2 * std::exp(-4.0) + std::exp(-8.0)) / 3)}, 1e-12);
  check_close(transfer::align_uniform_value(zs, zt, 2.0), {-3.7296823005623483}, 1e-10);
  // t = 1: 2/3 + log((2 e^-2 + e^-4) / 3) = -1.67332195
  check_close(transfer::align_uniform_value(zs, zt, 1.0), {-1.6733219463219298}, 1e-10);
  // only pairs i < j count: B = 2 has the single pair (0,1): unif = -t * ||z_0 - z_1||^2 = -2 * 2
  check_close(transfer::uniformity_loss(zs.slice(0, 0, 2), 2.0), {-4.0}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::uniformity_loss(zs.slice(0, 0, 1), 2.0), doctest::Contains("B >= 2"), Error);
  CHECK_THROWS_WITH_AS(transfer::alignment_loss(zs, zt.slice(0, 0, 2)), doctest::Contains("align_uniform"), Error);
}

TEST_CASE("align_uniform: gradient checks") {
  retort::test::gradcheck(
      [](const std::vector<Tensor>& in) { return transfer::align_uniform_value(in[0], in[1], 2.0); },
      {random_tensor({5, 3}, 51), random_tensor({5, 3}, 52)});
  // through both projection heads (f64), w.r.t. the student features
  transfer::AlignUniformLoss loss("t", 4, 6, 3, 2.0, 9, Device::cpu(), DType::f64);
  Tensor teacher_features = random_tensor({5, 6}, 53, -2, 2);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.value(in[0], teacher_features); },
                          {random_tensor({5, 4}, 54, -2, 2)});
}

TEST_CASE("align_uniform: the teacher head trains, the teacher features get no gradient") {
  transfer::AlignUniformLoss loss("teacher", 4, 6, 8, 2.0, 3, Device::cpu(), DType::f64);
  Tensor sf = random_tensor({5, 4}, 61).requires_grad_();
  Tensor tf = random_tensor({5, 6}, 62).requires_grad_();
  models::Taps student{{"pooled", sf}};
  std::map<std::string, models::Taps> teachers{{"teacher", {{"pooled", tf}}}};
  transfer::StepInputs in{Tensor(), Tensor(), &student, &teachers};
  Tensor r = loss.compute(in);
  CHECK(std::isfinite(r.item()));
  r.backward();
  CHECK(sf.grad().defined());
  CHECK_FALSE(tf.grad().defined());
  auto params = loss.parameters();
  REQUIRE(params.size() == 8);  // 2 heads x 2 linears x (weight, bias)
  int teacher_head_params = 0;
  for (auto& [n, p] : params) {
    INFO("parameter " << n);
    REQUIRE(p.grad().defined());
    double norm = 0;
    for (double g : p.grad().to_vector()) norm += g * g;
    CHECK(norm > 0);
    teacher_head_params += n.rfind("teacher_head.", 0) == 0;
  }
  CHECK(teacher_head_params == 4);
  CHECK(loss.teacher_head->fc2->weight.shape() == Shape{8, 6});
  CHECK(loss.teachers() == std::vector<std::string>{"teacher"});
  CHECK(loss.student_taps() == std::vector<std::string>{"pooled"});
  // the embeddings are unit rows
  Tensor z = loss.student_head->forward(sf);
  for (int64_t i = 0; i < 5; ++i) check_close(sum(mul(z.select(0, i), z.select(0, i))), {1.0}, 1e-12);
}

TEST_CASE("align_uniform: registered with its schema") {
  const LossSchema* schema = find_loss_schema("align_uniform");
  REQUIRE(schema != nullptr);
  for (const char* key : {"teacher", "dim", "t"}) CHECK(schema->find(key) != nullptr);
  CHECK(std::get<int64_t>(*schema->find("dim")->default_value) == 128);
  CHECK(std::get<double>(*schema->find("t")->default_value) == 2.0);
}

TEST_CASE("align_uniform: built through the registry, a step trains the student and both heads, never the teacher") {
  auto student = models::create_model("resnet8", fmnist_config(1));  // pooled [B, 64]
  auto teacher = models::create_model("vit_tiny", fmnist_config(2));  // pooled (CLS) [B, 192]
  auto loss = build_term("{ name = \"align_uniform\", teacher = \"t\", dim = 16 }", student, teacher);
  CHECK(loss->teachers() == std::vector<std::string>{"t"});
  CHECK(loss->parameters().size() == 8);  // 2 heads x 2 linears x (weight, bias)
  auto* au = dynamic_cast<transfer::AlignUniformLoss*>(loss.get());
  REQUIRE(au != nullptr);
  CHECK(au->teacher_head->fc2->weight.shape() == Shape{16, 192});
  // the value is a log-sum-exp plus an alignment: it may be negative
  check_trains_student(*loss, *student, *teacher, {.batch = 4, .positive = false, .has_params = true});
  // a teacher that is not in the stage: the error names the recipe line
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"align_uniform\", teacher = \"s\" }", student, teacher),
      doctest::Contains("p.toml:11: loss 'align_uniform' reads teacher 's', which is not a teacher of this stage"),
      Error);
}

TEST_CASE("align_uniform: Wang & Isola's align_loss and uniform_loss on the two heads (values and gradients)") {
  const auto f = retort::test::load_loss_fixture("align_uniform");
  for (DType dtype : {DType::f64, DType::f32}) {
    std::map<std::string, Tensor> in;
    for (const auto& [key, t] : f.file.tensors)
      if (key.rfind("input.", 0) == 0) in[key.substr(6)] = f.input(key.substr(6), dtype);
    transfer::AlignUniformLoss loss("t", in["phi_s"].size(1), in["phi_t"].size(1), std::stoll(f.meta("dim")),
                                    f.number("t"), 0, Device::cpu(), dtype);
    for (auto* side : {&loss.student_head, &loss.teacher_head}) {
      const std::string name = side == &loss.student_head ? "student_head" : "teacher_head";
      (*side)->fc1->weight = in[name + ".fc1.weight"];
      (*side)->fc1->bias = in[name + ".fc1.bias"];
      (*side)->fc2->weight = in[name + ".fc2.weight"];
      (*side)->fc2->bias = in[name + ".fc2.bias"];
    }
    retort::test::check_loss_fixture(f, loss.value(in["phi_s"], in["phi_t"]), in, dtype);
  }
}
