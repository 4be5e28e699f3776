// DeiT's distillation token: the distilled ViT (the extra token and head, the taps, the heads'
// mean in evaluation), hand-computed hard and soft losses, f64 gradient checks, DeiT's own
// DistillationLoss on the reference fixtures, a ResNet teacher through the registry, and errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "models/vit.h"
#include "transfer/adapters.h"
#include "transfer/deit.h"

using namespace retort;
using retort::test::check_close;
using retort::test::fmnist_config;
using retort::test::random_tensor;

TEST_CASE("deit: the distilled ViT has a distillation token, a second head and DeiT's inference rule") {
  auto model = models::create_model("deit_tiny_distilled", fmnist_config(31));
  auto* vit = dynamic_cast<models::VisionTransformer*>(model.get());
  REQUIRE(vit != nullptr);
  CHECK(vit->distilled());
  CHECK(vit->prefix_tokens() == 2);
  CHECK(vit->dist_token.shape() == Shape{1, 1, 192});
  CHECK(vit->pos_embed.shape() == Shape{1, 49 + 2, 192});
  // the plain ViT of the same size: one token and one head fewer
  auto plain = models::create_model("vit_tiny", fmnist_config(31));
  CHECK(model->num_parameters() - plain->num_parameters() == 192 /*dist_token*/ + 192 /*pos row*/ + 192 * 10 + 10);
  const auto taps = model->tap_info({2, 1, 28, 28});
  auto find = [&](const std::string& n) {
    for (const auto& t : taps)
      if (t.name == n) return t;
    FAIL("no tap " << n);
    return models::TapInfo{};
  };
  CHECK(find("tokens.1").shape == Shape{2, 51, 192});
  CHECK(find("tokens.1").prefix_tokens == 2);
  CHECK(find("dist").shape == Shape{2, 192});
  CHECK(find("dist_logits").shape == Shape{2, 10});
  // training: the logits are the CLS head's; evaluation: the mean of the two heads
  Tensor x = random_tensor({2, 1, 28, 28}, 32, -1, 1, DType::f32);
  models::Taps t;
  model->train(true);
  Tensor train_logits = model->forward(x, &t);
  check_close(train_logits, vit->head->forward(t.at("cls")).to_vector(), 1e-6);
  check_close(t.at("dist_logits"), vit->head_dist->forward(t.at("dist")).to_vector(), 1e-6);
  model->train(false);
  models::Taps e;
  Tensor eval_logits = model->forward(x, &e);
  Tensor mean_heads = mul(add(vit->head->forward(e.at("cls")), e.at("dist_logits")), 0.5);
  check_close(eval_logits, mean_heads.to_vector(), 1e-6);
  // the token maps of a distilled ViT drop both prefix tokens
  transfer::TokensToMap to_map(51, 192, 2);
  Tensor grid = to_map.forward(e.at("tokens.1"));
  CHECK(grid.shape() == Shape{2, 192, 7, 7});
  check_close(grid.select(2, 0).select(2, 0), e.at("tokens.1").select(1, 2).to_vector(), 0.0);
  CHECK(transfer::tap_map_shape(find("tokens.0"), "student") == Shape{2, 192, 7, 7});
}

TEST_CASE("deit: hand-computed hard and soft losses") {
  // Row 0: distillation head z = [ln 2, 0, 0] (softmax 1/2, 1/4, 1/4); teacher [0, 5, 1] decides
  // class 1: CE = -ln(1/4) = ln 4. Row 1: z = 0 (uniform), teacher [3, 1, 2] decides class 0:
  // CE = ln 3. Hard = (ln 4 + ln 3) / 2.
  Tensor s = Tensor::from_vector({std::log(2.0), 0, 0, 0, 0, 0}, {2, 3}, DType::f64);
  Tensor t = Tensor::from_vector({0, 5, 1, 3, 1, 2}, {2, 3}, DType::f64);
  check_close(transfer::deit_hard_loss(s, t), {(std::log(4.0) + std::log(3.0)) / 2}, 1e-12);
  // Soft, T = 1: row 0 teacher probabilities (1/4, 1/2, 1/4) against the student's (1/2, 1/4, 1/4):
  // KL = 1/4 ln(1/2) + 1/2 ln 2 = ln 2 / 4; row 1 equal (uniform): 0. Over B * C = 6: ln 2 / 24.
  // T = 2 with logits doubled: the same probabilities and T^2 = 4 times the value.
  Tensor tp = Tensor::from_vector({std::log(0.25), std::log(0.5), std::log(0.25), 0, 0, 0}, {2, 3}, DType::f64);
  check_close(transfer::deit_soft_loss(s, tp, 1.0), {std::log(2.0) / 24}, 1e-12);
  check_close(transfer::deit_soft_loss(mul(s, 2.0), mul(tp, 2.0), 2.0), {std::log(2.0) / 6}, 1e-12);
}

TEST_CASE("deit: gradient checks w.r.t. the distillation head's logits") {
  Tensor t = random_tensor({4, 5}, 501, -2, 2);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::deit_hard_loss(in[0], t); },
                          {random_tensor({4, 5}, 502, -2, 2)});
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::deit_soft_loss(in[0], t, 3.0); },
                          {random_tensor({4, 5}, 503, -2, 2)});
}

TEST_CASE("deit: matches DeiT's DistillationLoss on the reference fixtures") {
  for (const char* name : {"deit_hard", "deit_soft"})
    for (DType dtype : {DType::f64, DType::f32}) {
      const auto f = retort::test::load_loss_fixture(name);
      CHECK(f.meta("reference").find("facebookresearch/deit") != std::string::npos);
      Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
      Tensor loss = f.meta("form") == "hard" ? transfer::deit_hard_loss(s, t) : transfer::deit_soft_loss(s, t, f.number("T"));
      retort::test::check_loss_fixture(f, loss, {{"student", s}}, dtype);
    }
}

TEST_CASE("deit: registry defaults, a ResNet teacher, and a student without the token") {
  auto deit = models::create_model("deit_tiny_distilled", fmnist_config(33));
  auto wrn = models::create_model("wrn_16_2", fmnist_config(34));
  auto resnet = models::create_model("resnet8", fmnist_config(35));
  const Recipe r = retort::test::loss_recipe("{ name = \"deit\", teacher = \"t\" }");
  CHECK(r.stages[0].losses[0].weight == transfer::kDeitDefaultWeight);
  auto term = retort::test::build_term("{ name = \"deit\", teacher = \"t\" }", deit, wrn);
  auto* d = dynamic_cast<transfer::DeitLoss*>(term.get());
  REQUIRE(d != nullptr);
  CHECK(d->form() == transfer::DeitForm::hard);
  CHECK(term->student_taps() == std::vector<std::string>{"dist_logits"});
  CHECK(term->teacher_taps() == std::vector<std::string>{"logits"});
  retort::test::check_trains_student(*term, *deit, *wrn, {.batch = 3, .seed = 98});
  // the gradient reaches the distillation head and token, not the CLS head
  auto* vit = dynamic_cast<models::VisionTransformer*>(deit.get());
  CHECK(vit->head_dist->weight.grad().defined());
  CHECK(vit->dist_token.grad().defined());
  CHECK_FALSE(vit->head->weight.grad().defined());
  deit->zero_grad();
  auto soft = retort::test::build_term("{ name = \"deit\", teacher = \"t\", form = \"soft\", T = 3 }", deit, resnet);
  CHECK(dynamic_cast<transfer::DeitLoss*>(soft.get())->temperature() == 3.0);
  retort::test::check_trains_student(*soft, *deit, *resnet, {.batch = 3, .seed = 99});
  CHECK_THROWS_WITH_AS(retort::test::build_term("{ name = \"deit\", teacher = \"t\" }", resnet, wrn),
                       doctest::Contains("p.toml:11: deit: the student (resnet-cifar) has no tap 'dist_logits'"),
                       Error);
  CHECK_THROWS_WITH_AS(retort::test::build_term("{ name = \"deit\", teacher = \"t\" }", resnet, wrn),
                       doctest::Contains("\"deit_tiny_distilled\""), Error);
  CHECK_THROWS_WITH_AS(retort::test::loss_recipe("{ name = \"deit\", teacher = \"t\", form = \"medium\" }"),
                       doctest::Contains("form"), Error);
}
