// Factor transfer: hand-worked values (transposed convolution, LeakyReLU, both factor forms,
// the reconstruction loss), f64 gradient checks (factor loss, translator and student features,
// paraphraser weights through the transposed convolutions), the reference fixtures of
// RepDistiller and torchdistill, ViT <-> ResNet pairings, the paraphraser handed from an earlier
// stage through BuildContext::earlier_loss_state, and the registry's errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/ft.h"

using namespace retort;
using models::TapInfo;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::loss_recipe;

namespace {
// The loss's state as an earlier stage hands it on: parameters() + buffers() by name.
std::map<std::string, Tensor> state_of(const transfer::Loss& loss) {
  std::map<std::string, Tensor> out;
  for (const auto& [n, t] : loss.parameters()) out[n] = t.detach().clone();
  for (const auto& [n, t] : loss.buffers()) out[n] = t.detach().clone();
  return out;
}

// Finite-difference check of the gradients of a module's named tensors: f reads the module,
// whose tensors the check replaces by the (perturbed) inputs.
void gradcheck_module(nn::Module& m, const std::vector<std::string>& names, const std::function<Tensor()>& f) {
  std::vector<Tensor> values;
  for (const auto& n : names) {
    Tensor* t = m.find_tensor(n);
    REQUIRE_MESSAGE(t != nullptr, n);
    values.push_back(t->detach().clone());
  }
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        for (size_t k = 0; k < names.size(); ++k) *m.find_tensor(names[k]) = in[k];
        return f();
      },
      values);
}

std::vector<std::string> parameter_names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [n, t] : m.named_parameters()) out.push_back(n);
  return out;
}
}  // namespace

TEST_CASE("ft: hand-computed transposed convolution, LeakyReLU and losses") {
  // ConvTranspose2d(1, 2, 3, stride 1, padding 1), input [[1, 2], [3, 4]]:
  //   out[y][x] = bias + sum_{i,j} in[i][j] * W[y - i + 1][x - j + 1]
  //   channel 0, W = [[1,2,3],[4,5,6],[7,8,9]]: out[0][0] = 1*5 + 2*4 + 3*2 + 4*1 = 23,
  //     out[0][1] = 1*6 + 2*5 + 3*3 + 4*2 = 33, out[1][0] = 1*8 + 2*7 + 3*5 + 4*4 = 53,
  //     out[1][1] = 1*9 + 2*8 + 3*6 + 4*5 = 63; bias 0.5 added
  //   channel 1, W all ones: every output sees all four inputs: 10; bias -1
  Generator gen(1);
  transfer::FtConvTranspose2d convt(1, 2, gen);
  CHECK(convt.weight.shape() == Shape{1, 2, 3, 3});  // PyTorch's [in, out, k, k]
  convt.to(DType::f64);
  std::vector<double> w{1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int i = 0; i < 9; ++i) w.push_back(1.0);
  convt.weight.copy_(Tensor::from_vector(w, {1, 2, 3, 3}, DType::f64));
  convt.bias.copy_(Tensor::from_vector({0.5, -1.0}, {2}, DType::f64));
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
  retort::test::check_close(convt.forward(x), {23.5, 33.5, 53.5, 63.5, 9, 9, 9, 9}, 1e-12);

  retort::test::check_close(transfer::ft_leaky_relu(Tensor::from_vector({-2, 0, 3}, {3}, DType::f64)), {-0.2, 0, 3},
                            1e-12);

  // Factor maps, B = 2, C = 2, 2x2 (row-major per channel):
  //   student b0: ch0 = ch1 = [1, 1, 1, 1];     b1: ch0 = [-2, 2, 1, 0], ch1 = [0, 0, -1, 0]
  //   teacher b0: ch0 = ch1 = [2, 0, 0, 0];     b1: ch0 = [0, 0, 0, 2], ch1 = [0, 0, 0, 0]
  Tensor fs = Tensor::from_vector({1, 1, 1, 1, 1, 1, 1, 1, -2, 2, 1, 0, 0, 0, -1, 0}, {2, 2, 2, 2}, DType::f64);
  Tensor ft = Tensor::from_vector({2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0}, {2, 2, 2, 2}, DType::f64);
  // RepDistiller: m = mean_c F^2, phi = m / ||m||.
  //   student b0: m = [1,1,1,1] -> [.5,.5,.5,.5];  b1: m = [2,2,1,0], ||m|| = 3 -> [2/3, 2/3, 1/3, 0]
  //   teacher b0: m = [4,0,0,0] -> [1,0,0,0];      b1: m = [0,0,0,2] -> [0,0,0,1]
  //   sum |diff| = (.5+.5+.5+.5) + (2/3+2/3+1/3+1) = 2 + 8/3 = 14/3; mean over B*h*w = 8: 7/12
  retort::test::check_close(transfer::ft_factor(fs, transfer::FtFactor::repdistiller),
                            {.5, .5, .5, .5, 2.0 / 3, 2.0 / 3, 1.0 / 3, 0}, 1e-12);
  retort::test::check_close(transfer::ft_factor_loss(fs, ft, transfer::FtFactor::repdistiller), {7.0 / 12}, 1e-12);
  // torchdistill: phi = F[b] flattened / its norm.
  //   b0: student 8 ones / sqrt(8); teacher [2,0,0,0,2,0,0,0] / sqrt(8) = 1/sqrt(2) at 2 places:
  //       sum |diff| = 2 * (1/sqrt(2) - 1/(2 sqrt(2))) + 6 / (2 sqrt(2)) = 8 / (2 sqrt(2)) = 2 sqrt(2)
  //   b1: student / sqrt(4+4+1+1) = sqrt(10); teacher one-hot at index 3 (the student's 0 there):
  //       sum |diff| = (2+2+1+1) / sqrt(10) + 1
  //   mean over B*C*h*w = 16
  const double td = (2 * std::sqrt(2.0) + 6 / std::sqrt(10.0) + 1) / 16;
  retort::test::check_close(transfer::ft_factor_loss(fs, ft, transfer::FtFactor::torchdistill), {td}, 1e-12);
  // The student map at 4x4 with each value repeated over a 2x2 block: average pooling to 2x2
  // gives the same maps back, so the same values.
  Tensor fs4 = fs.reshape({2, 2, 2, 1, 2, 1}).expand({2, 2, 2, 2, 2, 2}).contiguous().reshape({2, 2, 4, 4});
  retort::test::check_close(transfer::ft_factor_loss(fs4, ft, transfer::FtFactor::repdistiller), {7.0 / 12}, 1e-12);
  retort::test::check_close(transfer::ft_factor_loss(fs4, ft, transfer::FtFactor::torchdistill), {td}, 1e-12);
  // the teacher side is the larger one: pooled instead
  retort::test::check_close(transfer::ft_factor_loss(ft, fs4, transfer::FtFactor::repdistiller), {7.0 / 12}, 1e-12);

  // reconstruction: ((1-1)^2 + (2-1)^2 + (3-1)^2 + (4-1)^2) / 4 = 14/4
  Tensor rec = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
  retort::test::check_close(transfer::ft_reconstruction_loss(rec, Tensor::ones({1, 1, 2, 2}, DType::f64)), {3.5},
                            1e-12);
}

TEST_CASE("ft: paraphraser and translator layouts and parameter names") {
  transfer::FtOptions para_opts;
  para_opts.phase = transfer::FtPhase::paraphraser;
  transfer::FtLoss para("t", TapInfo{"stage3", {1, 5, 4, 4}}, TapInfo{"stage3", {1, 8, 4, 4}}, para_opts,
                        Device::cpu(), 0);
  CHECK(para.paraphraser().factor_channels == 4);
  CHECK(para.translator() == nullptr);
  CHECK(para.student_taps().empty());
  std::vector<std::string> names;
  for (const auto& [n, t] : para.parameters()) names.push_back(n + " " + shape_str(t.shape()));
  // RepDistiller's Paraphraser(use_bn=False) state dict, prefixed
  CHECK(names == std::vector<std::string>{
                     "paraphraser.encoder.0.weight [8, 8, 3, 3]", "paraphraser.encoder.0.bias [8]",
                     "paraphraser.encoder.3.weight [4, 8, 3, 3]", "paraphraser.encoder.3.bias [4]",
                     "paraphraser.encoder.6.weight [4, 4, 3, 3]", "paraphraser.encoder.6.bias [4]",
                     "paraphraser.decoder.0.weight [4, 4, 3, 3]", "paraphraser.decoder.0.bias [4]",
                     "paraphraser.decoder.3.weight [4, 8, 3, 3]", "paraphraser.decoder.3.bias [8]",
                     "paraphraser.decoder.6.weight [8, 8, 3, 3]", "paraphraser.decoder.6.bias [8]"});
  CHECK(para.buffers().empty());

  transfer::FtOptions opts;  // transfer
  opts.rate = 0.4;           // int(8 * 0.4) = 3
  transfer::FtLoss loss("t", TapInfo{"stage3", {1, 5, 4, 4}}, TapInfo{"stage3", {1, 8, 4, 4}}, opts, Device::cpu(), 0);
  REQUIRE(loss.translator() != nullptr);
  CHECK(loss.paraphraser().factor_channels == 3);
  CHECK(loss.student_taps() == std::vector<std::string>{"stage3"});
  names.clear();
  for (const auto& [n, t] : loss.parameters()) names.push_back(n + " " + shape_str(t.shape()));
  CHECK(names == std::vector<std::string>{
                     "translator.encoder.0.weight [5, 5, 3, 3]", "translator.encoder.0.bias [5]",
                     "translator.encoder.1.weight [5]", "translator.encoder.1.bias [5]",
                     "translator.encoder.3.weight [3, 5, 3, 3]", "translator.encoder.3.bias [3]",
                     "translator.encoder.4.weight [3]", "translator.encoder.4.bias [3]",
                     "translator.encoder.6.weight [3, 3, 3, 3]", "translator.encoder.6.bias [3]",
                     "translator.encoder.7.weight [3]", "translator.encoder.7.bias [3]"});
  // buffers: the translator's BN statistics and the frozen paraphraser (12 tensors)
  int paraphraser_buffers = 0;
  for (const auto& [n, t] : loss.buffers())
    if (n.rfind("paraphraser.", 0) == 0) {
      ++paraphraser_buffers;
      CHECK_FALSE(t.requires_grad());
    }
  CHECK(paraphraser_buffers == 12);
  CHECK(loss.buffers().size() == 12 + 9);
}

TEST_CASE("ft: gradient checks (factor loss, translator, paraphraser) in f64") {
  // the factor loss w.r.t. the student factor, pooled 4x4 -> 2x2, both forms
  Tensor s = retort::test::random_tensor({2, 3, 4, 4}, 11), t = retort::test::random_tensor({2, 3, 2, 2}, 12);
  for (auto form : {transfer::FtFactor::repdistiller, transfer::FtFactor::torchdistill})
    retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::ft_factor_loss(in[0], t, form); },
                            {s});

  for (auto form : {transfer::FtFactor::repdistiller, transfer::FtFactor::torchdistill}) {
    // transfer phase: student map [2, 2, 4, 4] -> translator -> 2 factor channels; teacher [2, 4, 2, 2]
    transfer::FtOptions o;
    o.factor = form;
    transfer::FtLoss loss("t", TapInfo{"stage3", {1, 2, 4, 4}}, TapInfo{"stage3", {1, 4, 2, 2}}, o, Device::cpu(), 5);
    loss.translator()->to(DType::f64);
    loss.paraphraser().to(DType::f64);
    Tensor fs = retort::test::random_tensor({2, 2, 4, 4}, 13), ft = retort::test::random_tensor({2, 4, 2, 2}, 14, 0, 2);
    retort::test::gradcheck([&](const std::vector<Tensor>& in) { return loss.compute(in[0], ft); }, {fs});
    gradcheck_module(*loss.translator(), parameter_names(*loss.translator()), [&] { return loss.compute(fs, ft); });
  }

  // paraphraser phase: the reconstruction loss w.r.t. every paraphraser weight (the decoder's
  // transposed convolutions included)
  transfer::FtOptions p;
  p.phase = transfer::FtPhase::paraphraser;
  transfer::FtLoss para("t", TapInfo{"stage3", {1, 4, 3, 3}}, TapInfo{"stage3", {1, 4, 3, 3}}, p, Device::cpu(), 6);
  para.paraphraser().to(DType::f64);
  Tensor ft = retort::test::random_tensor({2, 4, 3, 3}, 15, 0, 2);
  gradcheck_module(para.paraphraser(), parameter_names(para.paraphraser()), [&] { return para.compute(ft, ft); });
}

TEST_CASE("ft: matches RepDistiller and torchdistill (reference fixtures)") {
  for (DType dtype : {DType::f64, DType::f32}) {
    {  // stage 1: RepDistiller's Paraphraser + MSELoss
      auto f = retort::test::load_loss_fixture("ft_paraphraser");
      CHECK(f.meta("phase") == "paraphraser");
      transfer::FtOptions o;
      o.phase = transfer::FtPhase::paraphraser;
      o.rate = f.number("rate");
      const TapInfo tap{"stage3", {1, 6, 4, 4}};
      transfer::FtLoss loss("t", tap, tap, o, Device::cpu(), 0);
      loss.paraphraser().to(dtype);
      std::map<std::string, Tensor> inputs;
      for (auto& [n, p] : loss.parameters()) {
        Tensor dst = p;
        dst.copy_(f.input(n, dtype));
        inputs[n] = p;
      }
      Tensor ft = f.input("f_t", dtype);
      retort::test::check_loss_fixture(f, loss.compute(ft, ft), inputs, dtype);
    }
    for (const char* name : {"ft_repdistiller", "ft_torchdistill"}) {  // stage 2
      auto f = retort::test::load_loss_fixture(name);
      transfer::FtOptions o;
      o.factor = transfer::parse_ft_factor(f.meta("factor"));
      o.rate = f.number("rate");
      Tensor fs = f.input("f_s", dtype), ft = f.input("f_t", dtype);
      transfer::FtLoss loss("t", TapInfo{"stage3", {1, fs.size(1), fs.size(2), fs.size(3)}},
                            TapInfo{"stage3", {1, ft.size(1), ft.size(2), ft.size(3)}}, o, Device::cpu(), 0);
      loss.translator()->to(dtype);
      loss.paraphraser().to(dtype);
      // the paraphraser arrives as an earlier stage's state: the fixture's encoder, and this
      // loss's own decoder (the transfer phase never runs it)
      std::map<std::string, Tensor> earlier;
      for (auto& [n, t] : loss.buffers())
        if (n.rfind("paraphraser.", 0) == 0)
          earlier[n] = n.rfind("paraphraser.encoder.", 0) == 0 ? f.input(n) : t.detach().clone();
      loss.load_paraphraser(earlier, "the fixture");
      CHECK(loss.paraphraser_loaded());
      std::map<std::string, Tensor> inputs{{"f_s", fs}};
      for (auto& [n, p] : loss.parameters()) {
        Tensor dst = p;
        dst.copy_(f.input(n, dtype));
        inputs[n] = p;
      }
      retort::test::check_loss_fixture(f, loss.compute(fs, ft), inputs, dtype);
      for (const auto& [n, t] : loss.paraphraser().named_parameters()) CHECK_FALSE(t.grad().defined());
      // the translator's conv biases feed BatchNorm in training mode: their exact gradient is 0
      // (the fixture stores them without one); retort's is round-off
      if (dtype == DType::f64)
        for (const char* b : {"translator.encoder.0.bias", "translator.encoder.3.bias", "translator.encoder.6.bias"}) {
          CHECK_FALSE(f.has(std::string("grad.") + b));
          for (double g : inputs.at(b).grad().to_vector()) CHECK(std::abs(g) <= 1e-12);
        }
    }
  }
}

namespace {
// The recipe of the registry tests below: teachers "t" (wrn_16_2) and "v" (vit_tiny); the term
// is on line 14 of "ft.toml".
const std::string kBase = R"(
[models.t]
arch = "wrn_16_2"
weights = "t.safetensors"
[models.v]
arch = "vit_tiny"
weights = "v.safetensors"
[models.s]
arch = "resnet8"
[[stages]]
train = "s"
teachers = ["t", "v"]
epochs = 1
)";

std::unique_ptr<transfer::Loss> build_term(const std::string& term, std::shared_ptr<models::Model> student,
                                           std::shared_ptr<models::Model> t, std::shared_ptr<models::Model> v,
                                           transfer::EarlierLossState earlier = {}) {
  return retort::test::build_term(loss_recipe(term, "ft.toml", kBase), std::move(student),
                                  {{"t", std::move(t)}, {"v", std::move(v)}},
                                  {.earlier_loss_state = std::move(earlier)});
}

}  // namespace

TEST_CASE("ft: ViT and ResNet on either side, with the paraphraser from an earlier stage") {
  auto wrn = models::create_model("wrn_16_2", fmnist_config(1));
  auto vit = models::create_model("vit_tiny", fmnist_config(2));  // tokens [B, 50, 192]: a 7x7 grid
  auto resnet = models::create_model("resnet8", fmnist_config(3));
  auto vit_student = models::create_model("vit_tiny", fmnist_config(4));

  // resnet8 student, ViT teacher: the paraphraser learns on tokens.1 (192 channels, 7x7), then
  // resnet8's stage3 (64 x 7 x 7) is translated to 96 factor channels
  auto para = build_term(R"({ name = "ft", phase = "paraphraser", teacher = "v", teacher_tap = "tokens.1", weight = 1 })",
                         resnet, wrn, vit);
  CHECK(para->student_taps().empty());
  check_trains_student(*para, *resnet, *vit, {.seed = 77, .teacher = "v", .student_learns = false});
  // what the earlier stage ended with (one weight changed, so a fresh paraphraser, which the
  // same seed would initialise alike, cannot pass for the loaded one)
  auto earlier = state_of(*para);
  earlier["paraphraser.encoder.3.weight"] = mul(earlier.at("paraphraser.encoder.3.weight"), 2.0);
  std::string asked_stage, asked_kind;
  auto from_para = [&](const std::string& stage, const std::string& kind) -> std::optional<std::map<std::string, Tensor>> {
    asked_stage = stage;
    asked_kind = kind;
    return earlier;
  };
  auto r2v = build_term(R"({ name = "ft", teacher = "v", teacher_tap = "tokens.1", paraphraser_stage = "para" })",
                        resnet, wrn, vit, from_para);
  CHECK(asked_stage == "para");
  CHECK(asked_kind == "ft");
  auto* r2v_ft = dynamic_cast<transfer::FtLoss*>(r2v.get());
  REQUIRE(r2v_ft != nullptr);
  CHECK(r2v_ft->paraphraser_loaded());
  CHECK(r2v_ft->paraphraser().factor_channels == 96);
  // the loaded encoder is the earlier term's
  CHECK(retort::test::same_bits(r2v_ft->paraphraser().encoder->at<nn::Conv2d>(3)->weight,
                                earlier.at("paraphraser.encoder.3.weight")));
  for (auto p : resnet->parameters()) p.zero_grad();
  check_trains_student(*r2v, *resnet, *vit, {.seed = 77, .teacher = "v"});

  // ViT student (tokens.1 -> 7x7 grid, 192 channels) against wrn_16_2's stage3 (128 x 7 x 7)
  auto para_t = build_term(R"({ name = "ft", phase = "paraphraser", teacher = "t", weight = 1 })", vit_student, wrn, vit);
  auto v2r = build_term(R"({ name = "ft", teacher = "t", student_tap = "tokens.1", paraphraser_stage = "p" })",
                        vit_student, wrn, vit, [&](const std::string&, const std::string&) { return state_of(*para_t); });
  CHECK(dynamic_cast<transfer::FtLoss&>(*v2r).paraphraser().factor_channels == 64);
  check_trains_student(*v2r, *vit_student, *wrn, {.seed = 77, .teacher = "t"});

  // a vector tap cannot carry a factor: the build fails, naming the line and the tap
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", student_tap = "pooled", paraphraser_stage = "p" })",
                                  resnet, wrn, vit),
                       doctest::Contains("ft.toml:14: ft: the student tap 'pooled' is a vector [1, 64]"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", phase = "paraphraser", teacher = "v", teacher_tap = "cls" })",
                                  resnet, wrn, vit),
                       doctest::Contains("the teacher tap 'cls' is a vector"), Error);
}

TEST_CASE("ft: registry defaults, the earlier stage's state and errors") {
  auto wrn = models::create_model("wrn_16_2", fmnist_config(5));
  auto vit = models::create_model("vit_tiny", fmnist_config(6));
  auto resnet = models::create_model("resnet8", fmnist_config(7));
  const Recipe r = loss_recipe("{ name = \"ft\", teacher = \"t\", paraphraser_stage = \"p\" }", "ft.toml", kBase);
  const LossArgs args = loss_args(r, r.stages[0].losses[0]);
  CHECK(r.stages[0].losses[0].weight == transfer::kFtDefaultWeight);
  CHECK(transfer::kFtDefaultWeight == 200.0);
  CHECK(args.string("phase") == "transfer");
  CHECK(args.string("factor") == "repdistiller");
  CHECK(args.string("student_tap") == "stage3");
  CHECK(args.string("teacher_tap") == "stage3");
  CHECK(args.number("rate") == 0.5);

  // no earlier state (validation: nullopt; outside a run: no function): a fresh paraphraser
  auto fresh = build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit,
                          [](const std::string&, const std::string&) { return std::nullopt; });
  CHECK_FALSE(dynamic_cast<transfer::FtLoss&>(*fresh).paraphraser_loaded());
  CHECK(fresh->parameters().size() == 12);  // the translator only
  CHECK(fresh->student_taps() == std::vector<std::string>{"stage3"});
  CHECK(fresh->teacher_taps() == std::vector<std::string>{"stage3"});
  CHECK(fresh->teachers() == std::vector<std::string>{"t"});
  auto none = build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit);
  CHECK_FALSE(dynamic_cast<transfer::FtLoss&>(*none).paraphraser_loaded());

  // keys checked when the recipe is read
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"ft\", teacher = \"t\", phase = \"pretrain\" }", "ft.toml", kBase),
                       doctest::Contains("key 'phase' in [stages.losses.ft] must be one of \"paraphraser\""), Error);
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"ft\", teacher = \"t\", factor = \"paper\" }", "ft.toml", kBase),
                       doctest::Contains("key 'factor' in [stages.losses.ft] must be one of \"repdistiller\""), Error);
  CHECK_THROWS_WITH_AS(loss_recipe("{ name = \"ft\", teacher = \"t\", rate = 1.5 }", "ft.toml", kBase),
                       doctest::Contains("key 'rate'"), Error);
  // keys checked when the term is built
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t" })", resnet, wrn, vit),
                       doctest::Contains("ft.toml:14: ft: phase \"transfer\" needs `paraphraser_stage`"), Error);
  CHECK_THROWS_WITH_AS(
      build_term(R"({ name = "ft", phase = "paraphraser", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit),
      doctest::Contains("`paraphraser_stage` is read only with phase \"transfer\""), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p", rate = 0.001 })", resnet,
                                  wrn, vit),
                       doctest::Contains("factor rate 0.001 leaves int(128 * 0.001) = 0 factor channels"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", teacher_tap = "stage9", paraphraser_stage = "p" })",
                                  resnet, wrn, vit),
                       doctest::Contains("ft.toml:14: ft: the teacher 't' (wrn) has no tap 'stage9'; its taps are: stem"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", student_tap = "tokens.1", paraphraser_stage = "p" })",
                                  resnet, wrn, vit),
                       doctest::Contains("the student (resnet-cifar) has no tap 'tokens.1'"), Error);

  // the earlier stage: its lookup's own error passes through with the line
  auto missing_stage = [](const std::string& stage, const std::string&) -> std::optional<std::map<std::string, Tensor>> {
    fail("no earlier stage '{}' in this recipe", stage);
  };
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "nope" })", resnet, wrn, vit,
                                  missing_stage),
                       doctest::Contains("ft.toml:14: no earlier stage 'nope'"), Error);
  // a state without a paraphraser (e.g. the stage's ft term is not the paraphraser phase of this kind)
  auto empty_state = [](const std::string&, const std::string&) {
    return std::optional<std::map<std::string, Tensor>>(std::map<std::string, Tensor>{});
  };
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit,
                                  empty_state),
                       doctest::Contains("ft: stage 'p' holds no 'paraphraser.encoder.0.weight' (it has: nothing)"),
                       Error);
  // a paraphraser trained on another tap (stage2: 64 channels) does not fit stage3's 128
  auto para2 = build_term(R"({ name = "ft", phase = "paraphraser", teacher = "t", teacher_tap = "stage2" })", resnet,
                          wrn, vit);
  CHECK_THROWS_WITH_AS(
      build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit,
                 [&](const std::string&, const std::string&) { return state_of(*para2); }),
      doctest::Contains("ft: stage 'p''s 'paraphraser.encoder.0.weight' has shape [64, 64, 3, 3], but this term's "
                        "paraphraser (teacher tap 'stage3', 128 channels, 64 factor channels) needs [128, 128, 3, 3]"),
      Error);
  // built before the earlier stage ran (the runner builds every term first: nullopt), loaded
  // when the term's own stage begins; a stage that left nothing by then is an error
  bool ran = false;
  auto para3 = build_term(R"({ name = "ft", phase = "paraphraser", teacher = "t" })", resnet, wrn, vit);
  auto trained = state_of(*para3);
  trained["paraphraser.encoder.0.bias"] = add(trained.at("paraphraser.encoder.0.bias"), 1.0);
  auto late = [&](const std::string&, const std::string&) -> std::optional<std::map<std::string, Tensor>> {
    if (!ran) return std::nullopt;
    return trained;
  };
  auto lazy = build_term(R"({ name = "ft", teacher = "t", paraphraser_stage = "p" })", resnet, wrn, vit, late);
  auto& lazy_ft = dynamic_cast<transfer::FtLoss&>(*lazy);
  CHECK_FALSE(lazy_ft.paraphraser_loaded());
  CHECK_THROWS_WITH_AS(lazy->begin_stage(),
                       doctest::Contains("ft.toml:14: loss 'ft' reads the paraphraser that stage 'p' trained, but "
                                         "that stage left no loss state"),
                       Error);
  ran = true;
  lazy->begin_stage();
  CHECK(lazy_ft.paraphraser_loaded());
  CHECK(retort::test::same_bits(lazy_ft.paraphraser().encoder->at<nn::Conv2d>(0)->bias,
                                trained.at("paraphraser.encoder.0.bias")));
  none->begin_stage();  // no source outside a run: nothing to load
  CHECK_FALSE(dynamic_cast<transfer::FtLoss&>(*none).paraphraser_loaded());

  // a teacher that is not in the stage
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ft", teacher = "s", paraphraser_stage = "p" })", resnet, wrn, vit),
                       doctest::Contains("loss 'ft' reads teacher 's', which is not a teacher of this stage"), Error);
}
