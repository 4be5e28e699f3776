// AB loss: hand-computed elementwise margin terms and stage weighting; f64 gradient checks w.r.t. the
// student maps and the connectors' parameters (1x1, stride-2 and transposed ConvReg); the connector
// rules (identity or the shared ConvReg without ReLU, the half-size case included); the reference fixtures
// (RepDistiller's ABLoss + Connector, torchdistill's AltActTransferLoss) in f64 and f32; resnet8
// from wrn_16_2 through the registry; the build-time errors for a ViT and for wrong taps or keys.
#include <cmath>
#include "helpers.h"
#include "transfer/ab.h"
#include "transfer/loss_fixture.h"
#include "transfer/loss_test_util.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_trains_student;
using retort::test::fmnist_config;

namespace {

// "<prefix><k>" (fmt: GCC 12 warns falsely (-Wrestrict) on "literal" + std::to_string(k))
std::string key(const char* prefix, size_t k) { return fmt::format("{}{}", prefix, k); }

// The hand example, B = 2, C = 2, 2x2 maps (b, c, row-major), margin 1:
//   b0 c0: s [-2, -0.5, 0.5, 2], t all -1 (off):  e = [0 (s <= -1), 0.5^2, 1.5^2, 3^2] = [0, 0.25, 2.25, 9]
//   b0 c1: s [-2, -0.5, 0.5, 2], t all 1 (on):    e = [(-3)^2, (-1.5)^2, (-0.5)^2, 0 (s > 1)] = [9, 2.25, 0.25, 0]
//   b1 c0: s [-1, 1, 0, 3], t all 0 (0 is off):   e = [0 (s = -1 is not > -1), 2^2, 1^2, 4^2] = [0, 4, 1, 16]
//   b1 c1: s [-1, 1, 0, 3], t [0.5, 2, 1e-3, 5]:  e = [(-2)^2, 0 (s = 1 is <= 1: (1-1)^2), (-1)^2, 0] = [4, 0, 1, 0]
//   sum e = 11.5 + 11.5 + 21 + 5 = 49
const std::vector<double> kS{-2, -0.5, 0.5, 2, -2, -0.5, 0.5, 2, -1, 1, 0, 3, -1, 1, 0, 3};
const std::vector<double> kT{-1, -1, -1, -1, 1, 1, 1, 1, 0, 0, 0, 0, 0.5, 2, 1e-3, 5};
const std::vector<double> kE{0, 0.25, 2.25, 9, 9, 2.25, 0.25, 0, 0, 4, 1, 16, 4, 0, 1, 0};

}  // namespace

TEST_CASE("ab: hand-computed margin terms and stage weights") {
  Tensor s = Tensor::from_vector(kS, {2, 2, 2, 2}, DType::f64);
  Tensor t = Tensor::from_vector(kT, {2, 2, 2, 2}, DType::f64);
  retort::test::check_close(transfer::ab_elementwise(s, t, 1.0), kE, 1e-12);
  // one stage: weight 2^0 = 1 -> (3/1000) * 49 / B(=2) = 0.0735
  retort::test::check_close(transfer::ab_loss({s}, {t}), {0.0735}, 1e-12);
  // two stages: weights 1/2, 1 -> 1.5 * 0.0735; three: 1/4, 1/2, 1 -> 1.75 * 0.0735
  retort::test::check_close(transfer::ab_loss({s, s}, {t, t}), {0.11025}, 1e-12);
  retort::test::check_close(transfer::ab_loss({s, s, s}, {t, t, t}), {0.128625}, 1e-12);
  // the stage weight follows the position: a zero-loss stage first (s = 5 with t on) leaves 1 * 0.0735
  Tensor zero_s = Tensor::full({2, 2, 2, 2}, 5.0, DType::f64), on = Tensor::ones({2, 2, 2, 2}, DType::f64);
  retort::test::check_close(transfer::ab_loss({zero_s, s}, {on, t}), {0.0735}, 1e-12);
  // margin 0.5 on b0 c0/c1 (off: s > -0.5 -> (s + 0.5)^2; on: s <= 0.5 -> (s - 0.5)^2):
  //   c0 [0, 0 (s = -0.5), 1, 6.25], c1 [6.25, 1, 0 (s = 0.5), 0]
  retort::test::check_close(transfer::ab_elementwise(s.slice(0, 0, 1), t.slice(0, 0, 1), 0.5),
                            {0, 0, 1, 6.25, 6.25, 1, 0, 0}, 1e-12);
  CHECK_THROWS_WITH_AS(transfer::ab_elementwise(s, Tensor::zeros({2, 2, 1, 1}, DType::f64)),
                       doctest::Contains("differ in shape"), Error);
}

TEST_CASE("ab: connector rules (RepDistiller Connector: identity or ConvReg without ReLU)") {
  using Kind = transfer::ResampleConv::Kind;
  struct Case {
    Shape s, t, weight;  // weight: the conv's (PyTorch layout; {} for an identity connector)
    Kind kind;
    int64_t stride, padding;
    const char* name;
  };
  const std::vector<Case> cases{
      {{2, 3, 4, 4}, {2, 3, 4, 4}, {}, Kind::valid, 1, 0, "identity (same channels and size)"},
      {{2, 3, 4, 5}, {2, 3, 4, 4}, {}, Kind::valid, 1, 0, "identity (RD looks at channels and height only)"},
      {{2, 3, 4, 4}, {2, 5, 4, 4}, {5, 3, 1, 1}, Kind::valid, 1, 0, "1x1 conv"},
      {{2, 2, 8, 8}, {2, 4, 4, 4}, {4, 2, 3, 3}, Kind::halve, 2, 1, "3x3 stride-2 conv (twice the size)"},
      {{2, 2, 14, 14}, {2, 4, 7, 7}, {4, 2, 3, 3}, Kind::halve, 2, 1, "3x3 stride-2 conv (14 -> 7)"},
      {{2, 3, 6, 6}, {2, 4, 4, 4}, {4, 3, 3, 3}, Kind::valid, 1, 0, "3x3 valid conv"},
      {{2, 3, 6, 5}, {2, 4, 4, 4}, {4, 3, 3, 2}, Kind::valid, 1, 0, "3x2 valid conv"},
      {{2, 2, 4, 4}, {2, 3, 8, 8}, {2, 3, 4, 4}, Kind::double_up, 2, 1, "4x4 stride-2 transposed conv (half size)"},
      {{2, 4, 7, 7}, {2, 4, 14, 14}, {4, 4, 4, 4}, Kind::double_up, 2, 1, "transposed conv, same channels (7 -> 14)"},
  };
  std::vector<TapInfo> s, t;
  for (size_t k = 0; k < cases.size(); ++k) {
    s.push_back(TapInfo{key("s", k), cases[k].s});
    t.push_back(TapInfo{key("t", k), cases[k].t});
  }
  transfer::AbLoss loss("t", s, t, 1.0, Device::cpu(), 0);
  loss.to(DType::f64);
  size_t convs = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    INFO(c.name);
    auto reg = loss.connector(k);
    if (c.weight.empty()) {
      CHECK(reg == nullptr);
    } else {
      REQUIRE(reg != nullptr);
      ++convs;
      CHECK_FALSE(reg->relu);  // RD's Connector: ConvReg(use_relu=False)
      CHECK(reg->conv->kind == c.kind);
      CHECK(reg->conv->weight.shape() == c.weight);
      CHECK(reg->conv->bias.shape() == Shape{c.t[1]});
      CHECK(reg->conv->options.stride[0] == c.stride);
      CHECK(reg->conv->options.padding[0] == c.padding);
      CHECK(reg->bn->weight.shape() == Shape{c.t[1]});
      // the connector produces the teacher's shape
      CHECK(reg->forward(retort::test::random_tensor(c.s, 60 + k)).shape() == c.t);
    }
  }
  auto params = loss.parameters();
  REQUIRE(params.size() == 4 * convs);  // per ConvReg: conv weight, bias, bn weight, bias
  CHECK(params[0].first == "connectors.2.conv.weight");
  CHECK(params[1].first == "connectors.2.conv.bias");
  CHECK(params[2].first == "connectors.2.bn.weight");
  CHECK(params[3].first == "connectors.2.bn.bias");
  CHECK(params[4 * convs - 4].first == "connectors.8.conv.weight");
  bool running_mean = false;
  for (const auto& [n, b] : loss.buffers()) running_mean = running_mean || n == "connectors.8.bn.running_mean";
  CHECK(running_mean);
  // a student map smaller than the teacher's but not half of it: no connector, named taps and shapes
  CHECK_THROWS_WITH_AS(transfer::AbLoss("t", {TapInfo{"x", {2, 3, 3, 3}}}, {TapInfo{"y", {2, 4, 8, 8}}}, 1.0,
                                        Device::cpu(), 0),
                       doctest::Contains("ab: no connector from student tap 'x' [2, 3, 3, 3] to teacher tap 'y' "
                                         "[2, 4, 8, 8]: the student's 3x3 map is smaller than the teacher's 8x8 but "
                                         "not exactly half of it"),
                       Error);
  CHECK_THROWS_WITH_AS(transfer::AbLoss("t", {TapInfo{"x", {2, 3, 3, 3}}}, {TapInfo{"y", {2, 3, 4, 4}}}, 1.0,
                                        Device::cpu(), 0),
                       doctest::Contains("RepDistiller raises NotImplemented too"), Error);
}

TEST_CASE("ab: gradient checks w.r.t. the student maps and the connectors") {
  std::vector<Tensor> t{retort::test::random_tensor({2, 3, 3, 3}, 30), retort::test::random_tensor({2, 2, 2, 2}, 31)};
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::ab_loss(in, t); },
                          {retort::test::random_tensor({2, 3, 3, 3}, 32, -2.5, 2.5),
                           retort::test::random_tensor({2, 2, 2, 2}, 33, -2.5, 2.5)});
  // connectors in training mode (batch statistics): 1x1 conv + BN, 3x3 stride-2 conv + BN and
  // 4x4 stride-2 transposed conv + BN (the student map half the teacher's)
  const std::vector<Shape> ss{{3, 2, 2, 2}, {3, 2, 4, 4}, {3, 2, 2, 2}}, ts{{3, 3, 2, 2}, {3, 2, 2, 2}, {3, 3, 4, 4}};
  std::vector<TapInfo> s_taps, t_taps;
  for (size_t k = 0; k < ss.size(); ++k) {
    s_taps.push_back(TapInfo{key("s", k), ss[k]});
    t_taps.push_back(TapInfo{key("t", k), ts[k]});
  }
  transfer::AbLoss loss("t", s_taps, t_taps, 1.0, Device::cpu(), 7);
  loss.to(DType::f64);
  REQUIRE(loss.connector(2)->conv->kind == transfer::ResampleConv::Kind::double_up);
  std::vector<Tensor> tm, init;
  for (size_t k = 0; k < ss.size(); ++k) {
    tm.push_back(retort::test::random_tensor(ts[k], 34 + k));
    init.push_back(retort::test::random_tensor(ss[k], 37 + k, -2.0, 2.0));
  }
  for (size_t k = 0; k < ss.size(); ++k) {
    auto reg = loss.connector(k);
    init.push_back(reg->conv->weight.detach().clone());
    init.push_back(reg->conv->bias.detach().clone());
    init.push_back(retort::test::random_tensor({ts[k][1]}, 40 + k, 0.5, 1.5));   // bn weight
    init.push_back(retort::test::random_tensor({ts[k][1]}, 43 + k, -0.5, 0.5));  // bn bias
  }
  const size_t n = ss.size();
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        for (size_t k = 0; k < n; ++k) {
          auto reg = loss.connector(k);
          reg->conv->weight = in[n + 4 * k];
          reg->conv->bias = in[n + 1 + 4 * k];
          reg->bn->weight = in[n + 2 + 4 * k];
          reg->bn->bias = in[n + 3 + 4 * k];
        }
        return loss.compute({in.begin(), in.begin() + std::ptrdiff_t(n)}, tm);
      },
      init);
}

TEST_CASE("ab: reference values (RepDistiller ABLoss + Connector, torchdistill AltActTransferLoss)") {
  {
    for (DType dtype : {DType::f64, DType::f32}) {
      // loaded per dtype: input() in f64 hands out (and marks requires_grad on) the stored tensor
      const auto f = retort::test::load_loss_fixture("ab_rd");
      const auto stages = size_t(f.number("stages"));
      std::vector<TapInfo> s, t;
      for (size_t k = 0; k < stages; ++k) {
        s.push_back(TapInfo{key("s", k), f.reference(key("input.s", k)).shape()});
        t.push_back(TapInfo{key("t", k), f.reference(key("input.t", k)).shape()});
      }
      transfer::AbLoss loss("t", s, t, f.number("margin"), Device::cpu(), 0);
      loss.to(dtype);
      std::map<std::string, Tensor> inputs;
      std::vector<Tensor> sm, tm;
      for (size_t k = 0; k < stages; ++k) {
        const std::string p = key("connectors.", k);
        if (auto reg = loss.connector(k)) {
          REQUIRE(reg->conv->weight.shape() == f.reference("input." + p + ".conv.weight").shape());
          reg->conv->weight = inputs[p + ".conv.weight"] = f.input(p + ".conv.weight", dtype);
          reg->conv->bias = inputs[p + ".conv.bias"] = f.input(p + ".conv.bias", dtype);
          reg->bn->weight = inputs[p + ".bn.weight"] = f.input(p + ".bn.weight", dtype);
          reg->bn->bias = inputs[p + ".bn.bias"] = f.input(p + ".bn.bias", dtype);
        } else {
          CHECK_FALSE(f.has("input." + p + ".conv.weight"));  // RD's identity connector: no parameters
        }
        sm.push_back(inputs[key("s", k)] = f.input(key("s", k), dtype));
        tm.push_back(inputs[key("t", k)] = f.input(key("t", k), dtype));
      }
      retort::test::check_loss_fixture(f, loss.compute(sm, tm), inputs, dtype);
    }
  }
  {
    for (DType dtype : {DType::f64, DType::f32}) {
      const auto f = retort::test::load_loss_fixture("ab_td");
      std::map<std::string, Tensor> inputs;
      std::vector<Tensor> sm, tm;
      for (size_t k = 0; k < size_t(f.number("stages")); ++k) {
        sm.push_back(inputs[key("s", k)] = f.input(key("s", k), dtype));
        tm.push_back(inputs[key("t", k)] = f.input(key("t", k), dtype));
      }
      retort::test::check_loss_fixture(f, transfer::ab_loss(sm, tm, f.number("margin")), inputs, dtype);
    }
  }
}

TEST_CASE("ab: resnet8 student from a wrn_16_2 teacher through the registry") {
  auto student = models::create_model("resnet8", fmnist_config(1));   // preact 16x28, 32x14, 64x7
  auto teacher = models::create_model("wrn_16_2", fmnist_config(2));  // preact 32x28, 64x14, 128x7
  const auto* schema = find_loss_schema("ab");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 1.0);
  auto loss = build_term(R"({ name = "ab", teacher = "t" })", student, teacher);
  CHECK(loss->student_taps() == std::vector<std::string>{"stage1.preact", "stage2.preact", "stage3.preact"});
  CHECK(loss->teacher_taps() == loss->student_taps());
  CHECK(loss->parameters().size() == 12);  // three 1x1 conv + BN connectors (16->32, 32->64, 64->128)
  check_trains_student(*loss, *student, *teacher, {.batch = 3, .seed = 50});
  // gradients reach the feature layers, not the classifier (AB's init stage trains no classifier):
  // no fc parameter has one, so the nonzero student gradient checked above is a feature layer's
  for (const auto& [n, p] : student->named_parameters())
    if (n.rfind("fc.", 0) == 0) CHECK_MESSAGE(!p.grad().defined(), n);
  // the same architecture on both sides: identity connectors, nothing learned
  auto same =
      build_term(R"({ name = "ab", teacher = "t" })", student, models::create_model("resnet8", fmnist_config(3)));
  CHECK(same->parameters().empty());
}

TEST_CASE("ab: a ViT on either side, wrong taps and bad keys fail at build time") {
  auto resnet = models::create_model("resnet8", fmnist_config(4));
  auto vit = models::create_model("vit_tiny", fmnist_config(5));
  // the default pre-ReLU taps do not exist on a ViT: the error lists its taps
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t" })", resnet, vit),
                       doctest::Contains("p.toml:11: ab: the teacher 't' (vit) has no tap 'stage1.preact'; its taps "
                                         "are: "),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t" })", vit, resnet),
                       doctest::Contains("ab: the student (vit) has no tap 'stage1.preact'"), Error);
  // token taps named explicitly are refused: AB needs pre-ReLU maps
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t", student_taps = ["stage3.preact"], )"
                                  R"(teacher_taps = ["tokens.1"] })",
                                  resnet, vit),
                       doctest::Contains("teacher tap 'tokens.1' is a token sequence [1, 50, 192], not a [B, C, H, W] "
                                         "map"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t", student_taps = ["pooled"] })", resnet, resnet),
                       doctest::Contains("student tap 'pooled' is a vector [1, 64]"), Error);
  // a wrong tap name, a bad margin, a teacher not in the stage
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t", student_taps = ["stage1.preact", "stage2.pre"] })",
                                  resnet, resnet),
                       doctest::Contains("ab: the student (resnet-cifar) has no tap 'stage2.pre'"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t", margin = 0.0 })", resnet, resnet),
                       doctest::Contains("key 'margin' in [stages.losses.ab] must be positive"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "s" })", resnet, resnet),
                       doctest::Contains("loss 'ab' reads teacher 's', which is not a teacher of this stage"), Error);
  // stage3 of the student (7x7) against stage1 of the teacher (28x28): smaller, not half, no connector
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "ab", teacher = "t", student_taps = ["stage3.preact"], )"
                                  R"(teacher_taps = ["stage1.preact"] })",
                                  resnet, resnet),
                       doctest::Contains("p.toml:11: ab: no connector from student tap 'stage3.preact' [1, 64, 7, 7] "
                                         "to teacher tap 'stage1.preact' [1, 16, 28, 28]: the student's 7x7 map is "
                                         "smaller than the teacher's 28x28 but not exactly half of it"),
                       Error);
  // stage3 (7x7) against stage2 (14x14): half size, RD's 4x4 stride-2 transposed conv + BN
  auto half = build_term(R"({ name = "ab", teacher = "t", student_taps = ["stage3.preact"], )"
                         R"(teacher_taps = ["stage2.preact"] })",
                         resnet, resnet);
  CHECK(half->parameters().size() == 4);
  CHECK(half->parameters()[0].first == "connectors.0.conv.weight");
  CHECK(half->parameters()[0].second.shape() == Shape{64, 32, 4, 4});
}
