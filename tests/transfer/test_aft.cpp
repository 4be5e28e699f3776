// AFT: kernel distance on hand-worked examples (rho fixed 0.5 and a learned rho), rbf,
// gradient checks w.r.t. the student features and s, multi-teacher concatenation, every
// variant, the learned prior's own optimizer group (also end to end through the trainer),
// registration.
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "train/recipe.h"
#include "train/recipe_schema.h"
#include "train/runner.h"
#include "transfer/aft.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {
// phi = [[2,0],[0,2],[-2,-2]]: column means are 0, row norms 2, 2, 2*sqrt(2), so the centred,
// normalised rows are (1,0), (0,1), (-1/sqrt2, -1/sqrt2) and
//   K_s = [[1, 0, -1/sqrt2], [0, 1, -1/sqrt2], [-1/sqrt2, -1/sqrt2, 1]].
Tensor example_phi() { return Tensor::from_vector({2, 0, 0, 2, -2, -2}, {3, 2}, DType::f64); }
}  // namespace

TEST_CASE("aft: kernel distance on a hand-worked example, rho fixed at 0.5") {
  Tensor phi = example_phi();
  Tensor s0 = Tensor::zeros({2}, DType::f64);  // rho = sigmoid(0) = 0.5
  // psi = [[1,0],[1,0],[-2,0]]; 0.5*psi has column means 0 and -- after centring -- rows
  // (0.5,0), (0.5,0), (-1,0) -> normalised (1,0), (1,0), (-1,0):
  //   K_t = [[1, 1, -1], [1, 1, -1], [-1, -1, 1]]
  //   K_s - K_t: entries (0,1),(1,0) are -1; (0,2),(2,0),(1,2),(2,1) are 1 - 1/sqrt2; diagonal 0
  //   R = sqrt((2 * 1 + 4 * (1 - 1/sqrt2)^2) / 9 + 1e-8) = sqrt(2.34314575 / 9 + 1e-8) = 0.51024456
  Tensor psi = Tensor::from_vector({1, 0, 1, 0, -2, 0}, {3, 2}, DType::f64);
  check_close(transfer::aft_kernel_loss(phi, psi, s0), {0.5102445764867863}, 1e-7);
  // rbf: K = exp(-||x_i - x_j||^2) = exp(2 cos - 2) on unit rows:
  //   K_s(0,1) = e^-2, K_t(0,1) = e^0; K_s(0,2) = e^(-2 - sqrt2), K_t(0,2) = e^-4
  //   R = sqrt((2 (e^-2 - 1)^2 + 4 (e^(-2-sqrt2) - e^-4)^2) / 9 + 1e-8) = 0.40772285
  check_close(transfer::aft_kernel_loss(phi, psi, s0, /*rbf=*/true), {0.40772285171648925}, 1e-7);
  // psi = [[1,1],[1,-1],[-2,0]] is phi's normalised rows rotated by 45 degrees: K_t = K_s, so
  // R = sqrt(0 + 1e-8) = 1e-4 (the kernel is rotation invariant).
  Tensor rotated = Tensor::from_vector({1, 1, 1, -1, -2, 0}, {3, 2}, DType::f64);
  check_close(transfer::aft_kernel_loss(phi, rotated, s0), {1e-4}, 1e-6);
  // The fixed-rho loss term (learn_rho = false) gives the same value and has no parameters.
  transfer::AftOptions fixed;
  fixed.learn_rho = false;
  transfer::AftLoss loss({"t"}, 2, 2, fixed, 0, Device::cpu(), DType::f64);
  check_close(loss.rho(), {0.5, 0.5}, 1e-15);
  check_close(loss.value(phi, psi), {0.5102445764867863}, 1e-7);
  CHECK(loss.parameters().empty());
  CHECK(loss.param_groups().empty());
}

TEST_CASE("aft: a learned rho weights the teacher's dimensions") {
  // s = (ln 3, -ln 3): rho = (0.75, 0.25). psi = [[1,1],[1,-1],[-2,0]] -> rho*psi =
  // [[0.75,0.25],[0.75,-0.25],[-1.5,0]] (column means 0), row norms sqrt(0.625), sqrt(0.625), 1.5:
  //   rows (3,1)/sqrt10, (3,-1)/sqrt10, (-1,0);  K_t(0,1) = (9-1)/10 = 0.8, K_t(0,2) = K_t(1,2) = -3/sqrt10
  //   K_s - K_t: (0,1),(1,0): -0.8;  (0,2),(2,0),(1,2),(2,1): 3/sqrt10 - 1/sqrt2 = 0.24157710
  //   R = sqrt((2 * 0.64 + 4 * 0.24157710^2) / 9 + 1e-8) = 0.41007274
  Tensor s = Tensor::from_vector({std::log(3.0), -std::log(3.0)}, {2}, DType::f64);
  Tensor psi = Tensor::from_vector({1, 1, 1, -1, -2, 0}, {3, 2}, DType::f64);
  check_close(transfer::aft_kernel_loss(example_phi(), psi, s), {0.41007273819370543}, 1e-7);
}

TEST_CASE("aft: gradient checks w.r.t. the student features and s") {
  Tensor psi = random_tensor({5, 4}, 21, -2, 2);
  for (bool rbf : {false, true}) {
    INFO("rbf " << rbf);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) { return transfer::aft_kernel_loss(in[0], psi, in[1], rbf); },
        {random_tensor({5, 3}, 22, -2, 2), random_tensor({4}, 23, -1, 1)});
  }
  // dense map S and the centring/normalisation on their own
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) { return transfer::aft_kernel_distance(in[0], matmul(psi, in[1])); },
      {random_tensor({5, 3}, 24, -2, 2), random_tensor({4, 4}, 25, -1, 1)});
  retort::test::gradcheck([](const std::vector<Tensor>& in) { return transfer::aft_center_normalize(in[0]); },
                          {random_tensor({4, 3}, 26, -2, 2)});
}

TEST_CASE("aft: several teachers are concatenated; only s and the student get gradients") {
  transfer::AftOptions o;
  transfer::AftLoss loss({"a", "b"}, 3, 7, o, 0, Device::cpu(), DType::f64);
  REQUIRE(loss.s.shape() == Shape{7});
  Tensor phi = random_tensor({6, 3}, 31).requires_grad_();
  Tensor fa = random_tensor({6, 3}, 32).requires_grad_();
  Tensor fb = random_tensor({6, 4}, 33).requires_grad_();
  models::Taps student{{"pooled", phi}};
  std::map<std::string, models::Taps> teachers{{"a", {{"pooled", fa}}}, {"b", {{"pooled", fb}}}};
  transfer::StepInputs in{Tensor(), Tensor(), &student, &teachers};
  Tensor r = loss.compute(in);
  // the concatenation is [a | b], in the order of `teachers`
  check_close(r, {transfer::aft_kernel_loss(phi, concat({fa, fb}, 1), loss.s).item()}, 1e-12);
  r.backward();
  CHECK(phi.grad().defined());
  REQUIRE(loss.s.grad().defined());
  CHECK(loss.s.grad().shape() == Shape{7});
  CHECK_FALSE(fa.grad().defined());
  CHECK_FALSE(fb.grad().defined());
  CHECK(loss.teachers() == std::vector<std::string>{"a", "b"});
  CHECK(loss.student_taps() == std::vector<std::string>{"pooled"});
  CHECK(loss.teacher_taps() == std::vector<std::string>{"pooled"});
  // wrong teacher width
  CHECK_THROWS_WITH_AS(loss.value(phi, random_tensor({6, 5}, 34)), doctest::Contains("aft: expected"), Error);
  CHECK_THROWS_WITH_AS(loss.value(random_tensor({1, 3}, 35), random_tensor({1, 7}, 36)),
                       doctest::Contains("at least 2"), Error);
}

TEST_CASE("aft: s is in its own optimizer group (rho_lr, no weight decay)") {
  transfer::AftOptions o;
  o.rho_lr = 0.02;
  transfer::AftLoss loss({"t"}, 3, 4, o, 0, Device::cpu(), DType::f32);
  check_close(loss.rho(), {0.5, 0.5, 0.5, 0.5}, 1e-7);
  auto groups = loss.param_groups();
  REQUIRE(groups.size() == 1);
  REQUIRE(groups[0].params.size() == 1);
  CHECK(groups[0].params[0].first == "s");
  CHECK(groups[0].lr.value() == doctest::Approx(0.02));
  CHECK(groups[0].weight_decay.value() == 0.0);
  CHECK(groups[0].rule == GroupRule::adamw);  // Adam, as the authors train it, whatever the stage's optimizer
  o.rho_adam = false;                         // rho_optimizer = "stage"
  CHECK(transfer::AftLoss({"t"}, 3, 4, o, 0, Device::cpu(), DType::f32).param_groups().at(0).rule ==
        GroupRule::optimizer);
  CHECK(transfer::parse_aft_variant("rbf") == transfer::AftVariant::rbf);
  CHECK_THROWS_WITH_AS(transfer::parse_aft_variant("gaussian"), doctest::Contains("valid: kernel"), Error);
}

TEST_CASE("aft: every variant runs with a finite value and gradients") {
  Tensor psi = random_tensor({6, 4}, 41, -2, 2);
  for (const char* name : {"kernel", "dense", "rbf", "linear"}) {
    INFO("variant " << name);
    transfer::AftOptions o;
    o.variant = transfer::parse_aft_variant(name);
    transfer::AftLoss loss({"t"}, 3, 4, o, 7, Device::cpu(), DType::f64);
    Tensor phi = random_tensor({6, 3}, 42, -2, 2).requires_grad_();
    Tensor r = loss.value(phi, psi);
    CHECK(r.numel() == 1);
    CHECK(std::isfinite(r.item()));
    CHECK(r.item() > 0);
    r.backward();
    REQUIRE(phi.grad().defined());
    for (double g : phi.grad().to_vector()) CHECK(std::isfinite(g));
    auto params = loss.parameters();
    REQUIRE_FALSE(params.empty());
    for (auto& [n, p] : params) {
      INFO("parameter " << n);
      REQUIRE(p.grad().defined());
      for (double g : p.grad().to_vector()) CHECK(std::isfinite(g));
    }
    if (o.variant == transfer::AftVariant::dense) {
      // S starts at the identity: the same value as the kernel form (the normalisation
      // cancels rho = 0.5)
      check_close(r, {transfer::aft_kernel_loss(phi, psi, Tensor::zeros({4}, DType::f64)).item()}, 1e-7);
    }
    if (o.variant == transfer::AftVariant::linear) {
      check_close(r, {mse_loss(loss.map->forward(psi), phi).item()}, 1e-12);
      CHECK(params.size() == 2);  // weight, bias
    }
  }
}

TEST_CASE("aft: registered with its schema") {
  const LossSchema* schema = find_loss_schema("aft");
  REQUIRE(schema != nullptr);
  for (const char* key : {"teachers", "variant", "learn_rho", "rho_lr"}) CHECK(schema->find(key) != nullptr);
  CHECK(schema->find("teachers")->required);
}

TEST_CASE("aft: built through the registry, a step trains the student and s, never the teacher") {
  auto student = models::create_model("resnet8", fmnist_config(1));   // pooled [B, 64]
  auto teacher = models::create_model("wrn_16_2", fmnist_config(2));  // pooled [B, 128]
  auto loss = build_term("{ name = \"aft\", teachers = [\"t\"] }", student, teacher);
  CHECK(loss->teachers() == std::vector<std::string>{"t"});
  REQUIRE(loss->parameters().size() == 1);
  CHECK(loss->parameters()[0].second.shape() == Shape{128});  // s: one per teacher feature
  check_trains_student(*loss, *student, *teacher, {.batch = 4, .has_params = true});
  // a teacher that is not in the stage: the error names the recipe line
  CHECK_THROWS_WITH_AS(
      build_term("{ name = \"aft\", teachers = [\"t\", \"s\"] }", student, teacher),
      doctest::Contains("p.toml:11: loss 'aft' reads teacher 's', which is not a teacher of this stage"), Error);
}

TEST_CASE("aft: a run trains s in its own optimizer group (trainer, checkpoint)") {
  // End to end on a small labelled Fashion-MNIST subset: the AFT stage's checkpoint holds s
  // (moved away from 0) and an optimizer group with lr = rho_lr and no weight decay.
  Recipe recipe = parse_recipe(R"(
[run]
name = "tiny_aft"
seed = 5
device = "cpu"
[data]
dataset = "fashion-mnist"
labelled_per_class = 6
workers = 1
[models.teacher]
arch = "resnet8"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 12
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }
[[stages]]
name = "aft"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 12
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }
losses = [ { name = "ce" }, { name = "aft", teachers = ["teacher"], weight = 10.0, rho_lr = 0.03 } ]
)",
                               "tiny_aft.toml");
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("retort_test_aft_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  RunOptions options;
  options.quiet = true;
  options.out_dir = dir.string();
  REQUIRE(run_recipe(recipe, options).completed);
  auto ckpt = read_safetensors((dir / "checkpoints" / "aft.ckpt.safetensors").string());
  REQUIRE(ckpt.contains("model.loss1.s"));
  double moved = 0;
  for (double v : ckpt.at("model.loss1.s").to_vector()) moved = std::max(moved, std::abs(v));
  // Adam moves each element of s by up to ~rho_lr per step (here 0.03 over 5 steps); SGD at
  // this lr would move it by ~1e-5 (gradients ~1e-3 per element).
  CHECK(moved > 0.03);
  // The rho group carries Adam's state in the checkpoint.
  bool adam_state = false;
  for (const auto& [name, t] : ckpt.tensors) adam_state |= name.find(".exp_avg_sq") != std::string::npos;
  CHECK(adam_state);
  // rho's statistics after the epoch are in metrics.jsonl.
  std::ifstream metrics(dir / "metrics.jsonl");
  bool rho_logged = false;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.value("stage", "") != "aft" || !j.contains("loss_stats")) continue;
    const auto& stats = j.at("loss_stats");
    CHECK(stats.at("aft.rho_min").get<double>() < stats.at("aft.rho_mean").get<double>());
    CHECK(stats.at("aft.rho_max").get<double>() > stats.at("aft.rho_mean").get<double>());
    CHECK(stats.at("aft.rho_max").get<double>() - stats.at("aft.rho_min").get<double>() > 0.01);
    rho_logged = true;
  }
  CHECK(rho_logged);
  int rho_groups = 0;
  for (int g = 0; ckpt.metadata.count("optim.group" + std::to_string(g) + ".lr"); ++g) {
    const std::string prefix = "optim.group" + std::to_string(g);
    const double lr = std::stod(ckpt.metadata.at(prefix + ".lr"));
    const double wd = std::stod(ckpt.metadata.at(prefix + ".weight_decay"));
    INFO("group " << g << " lr " << lr << " weight_decay " << wd);
    if (lr == doctest::Approx(0.03)) {
      ++rho_groups;
      CHECK(wd == 0.0);
    } else {
      CHECK(lr == doctest::Approx(0.05));
    }
  }
  CHECK(rho_groups == 1);
  fs::remove_all(dir);
}

TEST_CASE("aft: the authors' KernelPrior values and gradients (linear and rbf kernels, learned rho, two teachers)") {
  for (const char* name : {"aft_kernel", "aft_rbf"}) {
    const auto f = retort::test::load_loss_fixture(name);
    const bool rbf = f.meta("kernel") == "rbf";
    for (DType dtype : {DType::f64, DType::f32}) {
      std::map<std::string, Tensor> in{{"phi", f.input("phi", dtype)}, {"psi", f.input("psi", dtype)},
                                       {"s", f.input("s", dtype)}};
      retort::test::check_loss_fixture(f, transfer::aft_kernel_loss(in["phi"], in["psi"], in["s"], rbf), in, dtype);
    }
  }
}
