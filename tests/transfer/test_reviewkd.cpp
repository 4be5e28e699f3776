// ReviewKD: the hierarchical context loss of hand-set differences (the pool weights per map size),
// PyTorch's nearest index rule, an ABF with hand-set weights (fusion, attention and output resize),
// f64 gradient checks through the ABF chain, mdistiller's ReviewKD values and gradients
// (tests/fixtures/losses/reviewkd) in f64 and f32, resnet8 from wrn_16_2 through the registry
// (defaults, parameter names, the warm-up factor), ViT token taps, and the build-time errors.
#include <cmath>
#include <set>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/reviewkd.h"

using namespace retort;
using models::TapInfo;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {

// The teacher t (random) plus a hand-set difference d: HCL depends on d alone (pooling is linear).
Tensor plus(const Tensor& t, const std::vector<double>& d) {
  return add(t, Tensor::from_vector(d, t.shape(), DType::f64));
}

// Level k's ABF (mdistiller's abfs.<n-1-k>) takes its parameters from `in` (fixture keys).
void load_abfs(transfer::ReviewKdLoss& loss, const std::map<std::string, Tensor>& in) {
  for (size_t k = 0; k < loss.levels(); ++k) {
    transfer::Abf& a = loss.abf(k);
    const std::string p = fmt::format("abfs.{}.", loss.levels() - 1 - k);
    a.conv1_conv()->weight = in.at(p + "conv1.0.weight");
    a.conv1_bn()->weight = in.at(p + "conv1.1.weight");
    a.conv1_bn()->bias = in.at(p + "conv1.1.bias");
    a.conv2_conv()->weight = in.at(p + "conv2.0.weight");
    a.conv2_bn()->weight = in.at(p + "conv2.1.weight");
    a.conv2_bn()->bias = in.at(p + "conv2.1.bias");
    if (a.fuse()) {
      a.att()->weight = in.at(p + "att_conv.0.weight");
      a.att()->bias = in.at(p + "att_conv.0.bias");
    }
  }
}

}  // namespace

TEST_CASE("reviewkd: HCL of hand-set differences d = s - t (batch 1, one channel)") {
  // 1x1: no pooling (4, 2, 1 are all >= h): d = 3 -> mse 9
  Tensor t1 = random_tensor({1, 1, 1, 1}, 1);
  check_close(transfer::hcl_level(plus(t1, {3}), t1), {9.0}, 1e-12);
  // 2x2: pool 1 only, weight 1/2: d = [[1, 2], [3, -2]]: mse (1 + 4 + 9 + 4) / 4 = 4.5; mean 1 -> 1;
  //   (4.5 + 0.5 * 1) / 1.5 = 10/3
  Tensor t2 = random_tensor({1, 1, 2, 2}, 2);
  const std::vector<double> d2{1, 2, 3, -2};
  check_close(transfer::hcl_level(plus(t2, d2), t2), {10.0 / 3.0}, 1e-12);
  // 4x4: pools 2 and 1 with weights 1/2 and 1/4 (the halving follows the pools used), total 1.75:
  //   d = [[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, -1, -3], [0, 0, -3, -1]]
  //   mse: each row's squares sum to 10 -> 40 / 16 = 2.5
  //   pool 2: block means [[1, 2], [0, -2]] -> (1 + 4 + 0 + 4) / 4 = 2.25
  //   pool 1: mean (4 + 8 + 0 - 8) / 16 = 0.25 -> 0.0625
  //   (2.5 + 2.25 / 2 + 0.0625 / 4) / 1.75 = 3.640625 / 1.75
  Tensor t4 = random_tensor({1, 1, 4, 4}, 3);
  const std::vector<double> d4{1, 1, 2, 2, 1, 1, 2, 2, 0, 0, -1, -3, 0, 0, -3, -1};
  check_close(transfer::hcl_level(plus(t4, d4), t4), {3.640625 / 1.75}, 1e-12);
  // 8x8: pools 4, 2, 1 with weights 1/2, 1/4, 1/8, total 1.875. A +-1 checkerboard: mse 1, every
  //   pool of its 2x2 (or larger even) blocks is 0 -> 1 / 1.875; a constant d = 2: every term 4 -> 4
  Tensor t8 = random_tensor({1, 1, 8, 8}, 4);
  std::vector<double> board(64), two(64, 2.0);
  for (size_t i = 0; i < 64; ++i) board[i] = ((i / 8 + i % 8) % 2 == 0) ? 1.0 : -1.0;
  check_close(transfer::hcl_level(plus(t8, board), t8), {1.0 / 1.875}, 1e-12);
  check_close(transfer::hcl_level(plus(t8, two), t8), {4.0}, 1e-12);
  // the levels are summed
  check_close(transfer::hcl_loss({plus(t2, d2), plus(t4, d4), plus(t1, {3})}, {t2, t4, t1}),
              {10.0 / 3.0 + 3.640625 / 1.75 + 9.0}, 1e-12);
  // the teacher is a constant
  Tensor s = random_tensor({2, 3, 4, 4}, 5).requires_grad_();
  Tensor t = random_tensor({2, 3, 4, 4}, 6).requires_grad_();
  transfer::hcl_level(s, t).backward();
  CHECK(s.grad().defined());
  CHECK_FALSE(t.grad().defined());
  CHECK_THROWS_WITH_AS(transfer::hcl_level(s, random_tensor({2, 3, 2, 2}, 7)),
                       doctest::Contains("must be [B, C, H, W] maps of one shape"), Error);
}

TEST_CASE("reviewkd: nearest resize follows PyTorch's index rule") {
  // sources read off torch 2.x F.interpolate(mode="nearest") (float scale in / out, floor, clamp)
  auto sources = [](int64_t in, int64_t out) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < out; ++i) v.push_back(transfer::nearest_source_index(i, in, out));
    return v;
  };
  CHECK(sources(4, 3) == std::vector<int64_t>{0, 1, 2});
  CHECK(sources(2, 6) == std::vector<int64_t>{0, 0, 0, 1, 1, 1});
  CHECK(sources(3, 6) == std::vector<int64_t>{0, 0, 1, 1, 2, 2});
  CHECK(sources(5, 3) == std::vector<int64_t>{0, 1, 3});
  CHECK(sources(3, 7) == std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2});
  CHECK(sources(7, 3) == std::vector<int64_t>{0, 2, 4});
  CHECK(sources(28, 14) == std::vector<int64_t>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26});
  CHECK(sources(1, 4) == std::vector<int64_t>{0, 0, 0, 0});
  // [[a, b, c], [d, e, f]] to 3 x 2: rows 0, 0, 1 and columns 0, 1
  Tensor x = random_tensor({1, 1, 2, 3}, 8);
  const auto v = x.to_vector();
  check_close(transfer::resize_nearest(x, 3, 2), {v[0], v[1], v[0], v[1], v[3], v[4]}, 0);
  // the gradient of an upsample sums over the copies
  retort::test::gradcheck([](const std::vector<Tensor>& in) { return transfer::resize_nearest(in[0], 5, 7); },
                          {random_tensor({2, 2, 2, 3}, 9)});
}

TEST_CASE("reviewkd: ABF with hand-set weights (eval mode): u = a0 conv1(x) + a1 nearest(r), then resized") {
  Generator gen(1);
  transfer::Abf abf(2, 2, 2, /*fuse=*/true, gen);
  abf.to(DType::f64);
  abf.train(false);
  // conv1 and conv2 identities (1x1 identity; 3x3 with the identity at the centre, padding 1),
  // every BatchNorm the identity (running mean 0, var 1 - eps, weight 1, bias 0)
  Tensor eye = Tensor::from_vector({1, 0, 0, 1}, {2, 2, 1, 1}, DType::f64);
  abf.conv1_conv()->weight.copy_(eye);
  std::vector<double> centre(2 * 2 * 9, 0.0);  // [out, in, 3, 3]: w[o][i][1][1] = (o == i)
  centre[0 * 18 + 0 * 9 + 4] = centre[1 * 18 + 1 * 9 + 4] = 1.0;
  abf.conv2_conv()->weight.copy_(Tensor::from_vector(centre, {2, 2, 3, 3}, DType::f64));
  for (const auto& bn : {abf.conv1_bn(), abf.conv2_bn()}) {
    bn->running_mean.zero_();
    bn->running_var.fill_(1.0 - bn->eps);
    bn->weight.fill_(1.0);
    bn->bias.zero_();
  }
  // attention weights 0, biases 0 and ln 3: a0 = sigmoid(0) = 1/2, a1 = sigmoid(ln 3) = 3/4
  abf.att()->weight.zero_();
  abf.att()->bias.copy_(Tensor::from_vector({0.0, std::log(3.0)}, {2}, DType::f64));
  Tensor x = random_tensor({1, 2, 2, 2}, 11), r = random_tensor({1, 2, 1, 1}, 12);
  auto y = abf.forward(x, r, {4, 4});  // the student's 2x2 to the teacher's 4x4: rows/cols i -> i / 2
  const auto xv = x.to_vector(), rv = r.to_vector();
  std::vector<double> expected;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 4; ++j) expected.push_back(0.5 * xv[size_t(c * 4 + (i / 2) * 2 + j / 2)] + 0.75 * rv[size_t(c)]);
  check_close(y.residual, expected, 1e-12);
  check_close(y.out, expected, 1e-12);
  CHECK(y.out.shape() == Shape{1, 2, 4, 4});
  // the deepest level's ABF takes no residual, a fusing one needs it
  CHECK_THROWS_WITH_AS(abf.forward(x, Tensor(), {2, 2}), doctest::Contains("ABF needs a deeper residual"), Error);
  std::vector<std::string> names;
  for (const auto& [n, p] : abf.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv1.0.weight", "conv1.1.weight", "conv1.1.bias", "conv2.0.weight",
                                          "conv2.1.weight", "conv2.1.bias", "att_conv.0.weight", "att_conv.0.bias"});
}

TEST_CASE("reviewkd: gradient checks through the ABF chain (f64, training-mode BatchNorm)") {
  // three levels: 4x4 -> teacher 8x8 (output upsampled), 4x4 -> teacher 2x2 (downsampled), a vector
  transfer::ReviewKdLoss loss("t", {TapInfo{"a", {1, 3, 4, 4}}, TapInfo{"b", {1, 4, 4, 4}}, TapInfo{"c", {1, 5}}},
                              {TapInfo{"a", {1, 2, 8, 8}}, TapInfo{"b", {1, 3, 2, 2}}, TapInfo{"c", {1, 4}}}, {},
                              Device::cpu(), DType::f64, 3);
  REQUIRE(loss.mid_channels() == 5);  // min(512, the deepest student width)
  std::vector<Tensor> t{random_tensor({3, 2, 8, 8}, 21), random_tensor({3, 3, 2, 2}, 22), random_tensor({3, 4}, 23)};
  transfer::Abf& top = loss.abf(0);
  transfer::Abf& mid = loss.abf(1);
  retort::test::gradcheck(
      [&](const std::vector<Tensor>& in) {
        top.att()->weight = in[3];
        mid.conv2_conv()->weight = in[4];
        return loss.compute({in[0], in[1], in[2]}, t);
      },
      {random_tensor({3, 3, 4, 4}, 24), random_tensor({3, 4, 4, 4}, 25), random_tensor({3, 5}, 26),
       random_tensor({2, 10, 1, 1}, 27), random_tensor({3, 5, 3, 3}, 28)});
  // the teacher is a constant
  Tensor s0 = random_tensor({3, 3, 4, 4}, 29).requires_grad_();
  Tensor tt = t[0].detach().clone().requires_grad_();
  loss.compute({s0, random_tensor({3, 4, 4, 4}, 30), random_tensor({3, 5}, 31)}, {tt, t[1], t[2]}).backward();
  CHECK(s0.grad().defined());
  CHECK_FALSE(tt.grad().defined());
}

TEST_CASE("reviewkd: mdistiller's ReviewKD (ABF + hcl_loss, warm-up, weight) on the reference fixture") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const auto f = retort::test::load_loss_fixture("reviewkd");
    const auto n = size_t(f.number("levels"));
    std::map<std::string, Tensor> in;
    std::vector<TapInfo> s_taps, t_taps;
    std::vector<Tensor> s, t;
    for (size_t k = 0; k < n; ++k) {
      s.push_back(in[fmt::format("s{}", k)] = f.input(fmt::format("s{}", k), dtype));
      t.push_back(in[fmt::format("t{}", k)] = f.input(fmt::format("t{}", k), dtype));
      s_taps.push_back(TapInfo{fmt::format("s{}", k), s.back().shape()});
      t_taps.push_back(TapInfo{fmt::format("t{}", k), t.back().shape()});
    }
    transfer::ReviewKdLoss loss("t", s_taps, t_taps, {}, Device::cpu(), dtype, 0);
    CHECK(loss.mid_channels() == int64_t(f.number("mid_channels")));
    // every parameter retort has is one of the fixture's, by mdistiller's name
    std::set<std::string> ours, theirs;
    for (const auto& [name, p] : loss.parameters()) {
      ours.insert(name);
      in[name] = f.input(name, dtype);
      CHECK_MESSAGE(in[name].shape() == p.shape(), name);
    }
    for (const auto& [key, v] : f.file.tensors)
      if (key.rfind("input.abfs.", 0) == 0) theirs.insert(key.substr(6));
    CHECK(ours == theirs);
    load_abfs(loss, in);
    // mdistiller's epoch 5 (1-based) is retort's epoch 4: factor 5 / 20 with the "epoch" granularity
    transfer::StepClock clock;
    clock.epoch = int64_t(f.number("epoch")) - 1;
    REQUIRE(loss.options().warmup.epochs == f.number("warmup_epochs"));
    const double factor = loss.warmup(clock);
    CHECK(factor == 0.25);
    Tensor hcl = loss.compute(s, t);
    retort::test::check_matches("hcl", hcl.detach(), f.reference("extra.hcl").to(dtype),
                                retort::test::loss_fixture_tolerance(dtype));
    retort::test::check_loss_fixture(f, mul(hcl, f.number("weight") * factor), in, dtype);
  }
}

TEST_CASE("reviewkd: resnet8 from wrn_16_2 through the registry (defaults, names, warm-up)") {
  const LossSchema* schema = find_loss_schema("reviewkd");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 5.0);
  CHECK(std::get<double>(*schema->find("warmup_epochs")->default_value) == 20.0);
  CHECK(std::get<std::string>(*schema->find("warmup_granularity")->default_value) == "epoch");
  CHECK_FALSE(schema->find("mid_channels")->default_value.has_value());
  auto student = models::create_model("resnet8", fmnist_config(1));   // 16x28, 32x14, 64x7, pooled 64
  auto teacher = models::create_model("wrn_16_2", fmnist_config(2));  // 32x28, 64x14, 128x7, pooled 128
  auto built = build_term(R"({ name = "reviewkd", teacher = "t" })", student, teacher);
  auto* loss = dynamic_cast<transfer::ReviewKdLoss*>(built.get());
  REQUIRE(loss != nullptr);
  CHECK(loss->student_taps() == std::vector<std::string>{"stage1", "stage2", "stage3", "pooled"});
  CHECK(loss->teacher_taps() ==
        std::vector<std::string>{"stage1.preact", "stage2.preact", "stage3.preact", "pooled"});
  CHECK(loss->teachers() == std::vector<std::string>{"t"});
  CHECK(loss->mid_channels() == 64);  // min(512, resnet8's pooled width)
  CHECK(loss->abf(0).in_channels == 16);
  CHECK(loss->abf(0).out_channels == 32);
  CHECK(loss->abf(3).in_channels == 64);
  CHECK(loss->abf(3).out_channels == 128);
  CHECK_FALSE(loss->abf(3).fuse());
  const auto params = loss->parameters();
  CHECK(params.size() == 6 + 3 * 8);  // the deepest ABF has no att_conv
  CHECK(params.front().first == "abfs.0.conv1.0.weight");
  CHECK(params.front().second.shape() == Shape{64, 64, 1, 1});  // abfs.0 is the deepest level (pooled)
  CHECK(params.back().first == "abfs.3.att_conv.0.bias");
  CHECK(loss->buffers().size() == 4 * 2 * 3);  // two BatchNorms per ABF: mean, var, count
  int64_t count = 0;
  for (const auto& [n, p] : params) count += p.numel();
  CHECK(count == 216006);  // mdistiller's ABF(16|32|64|64 -> 64 -> 32|64|128|128) has as many
  check_trains_student(*loss, *student, *teacher, {.batch = 3, .seed = 41, .finite_grads = true, .has_params = true});

  // the warm-up scales the loss: mdistiller's min(epoch / 20, 1) with a 1-based epoch (two levels
  // on random taps in place of a forward, to keep the test fast)
  auto deep = build_term(R"({ name = "reviewkd", teacher = "t", student_taps = ["stage3", "pooled"], )"
                         R"(teacher_taps = ["stage3.preact", "pooled"] })",
                         student, teacher);
  auto* two = dynamic_cast<transfer::ReviewKdLoss*>(deep.get());
  REQUIRE(two != nullptr);
  models::Taps s_taps{{"stage3", random_tensor({3, 64, 7, 7}, 42, -1, 1, DType::f32)},
                      {"pooled", random_tensor({3, 64}, 43, -1, 1, DType::f32)}};
  std::map<std::string, models::Taps> t_taps{{"t",
                                              {{"stage3.preact", random_tensor({3, 128, 7, 7}, 44, -1, 1, DType::f32)},
                                               {"pooled", random_tensor({3, 128}, 45, -1, 1, DType::f32)}}}};
  auto at = [&](int64_t epoch, int64_t batch, int64_t steps) {
    transfer::StepInputs in{Tensor(), Tensor(), &s_taps, &t_taps};
    in.clock = {epoch, batch, steps};
    NoGradGuard ng;
    return two->compute(in).item();
  };
  const double full = at(19, 0, 10);
  CHECK(full > 0);
  CHECK(two->epoch_stats().at("warmup") == 1.0);
  CHECK(at(0, 9, 10) == doctest::Approx(full / 20).epsilon(1e-6));
  CHECK(at(4, 3, 10) == doctest::Approx(full * 5 / 20).epsilon(1e-6));
  CHECK(two->epoch_stats().at("warmup") == 0.25);
  CHECK(at(40, 0, 10) == doctest::Approx(full).epsilon(1e-6));
  // "step": epochs done after the step, (epoch + (batch + 1) / steps) / W
  auto stepped = build_term(
      R"({ name = "reviewkd", teacher = "t", warmup_epochs = 0.5, warmup_granularity = "step", mid_channels = 8 })",
      student, teacher);
  auto* s = dynamic_cast<transfer::ReviewKdLoss*>(stepped.get());
  REQUIRE(s != nullptr);
  CHECK(s->mid_channels() == 8);
  CHECK(s->warmup({0, 1, 8}) == doctest::Approx(0.5));   // 2/8 of an epoch of 0.5
  CHECK(s->warmup({0, 4, 8}) == 1.0);                     // 5/8 > 0.5
  CHECK(loss->warmup({0, 1, 8}) == doctest::Approx(0.05));  // "epoch": 1/20 over the whole first epoch
  auto none = build_term(R"({ name = "reviewkd", teacher = "t", warmup_epochs = 0 })", student, teacher);
  CHECK(dynamic_cast<transfer::ReviewKdLoss*>(none.get())->warmup({0, 0, 8}) == 1.0);
}

TEST_CASE("reviewkd: ViT tokens named explicitly, and the build-time errors") {
  auto resnet = models::create_model("resnet8", fmnist_config(4));
  auto vit = models::create_model("vit_tiny", fmnist_config(5));
  // a ViT has no stage taps: the defaults fail with the recipe line, the model's taps and the key to set
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "t" })", resnet, vit),
                       doctest::Contains("p.toml:11: reviewkd: the teacher 't' (vit) has no tap 'stage1.preact'; its "
                                         "taps are: "),
                       Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "t" })", resnet, vit),
                       doctest::Contains("a ViT has no stage taps: name its token taps in `teacher_taps`"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "t" })", vit, resnet),
                       doctest::Contains("p.toml:11: reviewkd: the student (vit) has no tap 'stage1'"), Error);
  // token taps on their 7x7 grid: a ViT student against resnet8's stage2 (14x14), stage3 (7x7), pooled
  auto tokens = build_term(R"({ name = "reviewkd", teacher = "t", student_taps = ["tokens.0", "tokens.1", "pooled"], )"
                           R"(teacher_taps = ["stage2", "stage3", "pooled"] })",
                           vit, resnet);
  check_trains_student(*tokens, *vit, *resnet, {.batch = 2, .seed = 43, .finite_grads = true, .has_params = true});
  // wrong names and lists, bad keys
  CHECK_THROWS_WITH_AS(
      build_term(R"({ name = "reviewkd", teacher = "t", student_taps = ["stage1", "stage9"] })", resnet, resnet),
      doctest::Contains("p.toml:11: reviewkd: the student (resnet-cifar) has no tap 'stage9'"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "t", student_taps = ["stage2", "stage3"], )"
                                  R"(teacher_taps = ["stage1", "stage2", "stage3"] })",
                                  resnet, resnet),
                       doctest::Contains("reviewkd: 2 student taps [stage2, stage3] but 3 teacher taps"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "t", mid_channels = 0 })", resnet, resnet),
                       doctest::Contains("key 'mid_channels'"), Error);
  CHECK_THROWS_WITH_AS(
      build_term(R"({ name = "reviewkd", teacher = "t", warmup_granularity = "batch" })", resnet, resnet),
      doctest::Contains("key 'warmup_granularity'"), Error);
  CHECK_THROWS_WITH_AS(build_term(R"({ name = "reviewkd", teacher = "s" })", resnet, resnet),
                       doctest::Contains("loss 'reviewkd' reads teacher 's', which is not a teacher of this stage"),
                       Error);
}
