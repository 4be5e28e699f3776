// SGD and AdamW: two steps on a 2-element parameter against values worked out by hand,
// nesterov and weight decay, skipped parameters, zero_grad, lr access, parameter groups,
// and state export/import continuing bit-exactly.
#include <cmath>
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "helpers.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
Tensor param(const std::vector<double>& v, DType dtype) {
  Tensor p = Tensor::from_vector(v, {int64_t(v.size())}, dtype);
  p.requires_grad_(true);
  return p;
}
ParamGroup group_of(std::vector<Tensor> params, double lr, double wd = 0.0) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = wd;
  return g;
}
// Runs two steps with the given gradients and returns the parameter after each.
template <typename Opt, typename Options>
std::vector<std::vector<double>> two_steps(DType dtype, std::vector<double> p0, std::vector<double> g1,
                                           std::vector<double> g2, double lr, double wd, Options options) {
  Tensor p = param(p0, dtype);
  Opt opt({group_of({p}, lr, wd)}, options);
  std::vector<std::vector<double>> after;
  for (const auto& g : {g1, g2}) {
    p.set_grad(Tensor::from_vector(g, {2}, dtype));
    opt.step();
    after.push_back(p.to_vector());
  }
  return after;
}
void check_vec(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << " want " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}
}  // namespace

TEST_CASE("SGD: two steps match hand-computed values (momentum, nesterov, weight decay)") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-14 : 1e-6;
    INFO(dtype_name(dt));
    // (plain blocks, not SUBCASEs: doctest enters a SUBCASE only once per run, not once per loop turn)
    // p = [1, -2], g = [0.5, -1] both steps, lr 0.1.
    {  // plain
      // p1 = p - 0.1 g = [0.95, -1.9];  p2 = p1 - 0.1 g = [0.9, -1.8]
      auto r = two_steps<SGD>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.0, SgdOptions{});
      check_vec(r[0], {0.95, -1.9}, tol);
      check_vec(r[1], {0.9, -1.8}, tol);
    }
    {  // momentum 0.9
      // step 1: buf = g = [0.5, -1];                       p = [1 - 0.05, -2 + 0.1] = [0.95, -1.9]
      // step 2: buf = 0.9 [0.5, -1] + g = [0.95, -1.9];    p = [0.95 - 0.095, -1.9 + 0.19] = [0.855, -1.71]
      auto r = two_steps<SGD>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.0, SgdOptions{0.9, false});
      check_vec(r[0], {0.95, -1.9}, tol);
      check_vec(r[1], {0.855, -1.71}, tol);
    }
    {  // nesterov, momentum 0.9
      // step 1: buf = [0.5, -1];  d = g + 0.9 buf = [0.95, -1.9];  p = [1 - 0.095, -2 + 0.19] = [0.905, -1.81]
      // step 2: buf = [0.95, -1.9];  d = g + 0.9 buf = [1.355, -2.71];  p = [0.905 - 0.1355, -1.81 + 0.271]
      //         = [0.7695, -1.539]
      auto r = two_steps<SGD>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.0, SgdOptions{0.9, true});
      check_vec(r[0], {0.905, -1.81}, tol);
      check_vec(r[1], {0.7695, -1.539}, tol);
    }
    {  // weight decay 0.1, no momentum
      // step 1: d = g + 0.1 p = [0.6, -1.2];      p = [0.94, -1.88]
      // step 2: d = g + 0.1 p = [0.594, -1.188];  p = [0.94 - 0.0594, -1.88 + 0.1188] = [0.8806, -1.7612]
      auto r = two_steps<SGD>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.1, SgdOptions{});
      check_vec(r[0], {0.94, -1.88}, tol);
      check_vec(r[1], {0.8806, -1.7612}, tol);
    }
    {  // weight decay 0.1 with momentum 0.9
      // step 1: d = [0.6, -1.2];  buf = d;  p = [0.94, -1.88]
      // step 2: d = g + 0.1 p = [0.594, -1.188];  buf = 0.9 [0.6, -1.2] + d = [1.134, -2.268]
      //         p = [0.94 - 0.1134, -1.88 + 0.2268] = [0.8266, -1.6532]
      auto r = two_steps<SGD>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.1, SgdOptions{0.9, false});
      check_vec(r[0], {0.94, -1.88}, tol);
      check_vec(r[1], {0.8266, -1.6532}, tol);
    }
  }
}

TEST_CASE("AdamW: two steps match hand-computed values") {
  for (DType dt : {DType::f64, DType::f32}) {
    INFO(dtype_name(dt));
    const double tol = dt == DType::f64 ? 1e-12 : 1e-6;
    {  // constant gradient, weight decay 0.1
      // p = [1, -2], g = [0.5, -1] both steps, lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1.
      // With a constant g the bias-corrected moments are exactly m^ = g, v^ = g^2, so each step is
      //   p <- p * (1 - 0.1 * 0.1) - 0.1 * g / (|g| + 1e-8)
      // step 1: p*0.99 = [0.99, -1.98]; 0.1 * 0.5 / 0.50000001 = 0.1 - 2e-9; 0.1 * 1 / 1.00000001 = 0.1 - 1e-9
      //         p = [0.99 - 0.1 + 2e-9, -1.98 + 0.1 - 1e-9] = [0.890000002, -1.880000001]
      // step 2: p*0.99 = [0.88110000198, -1.86120000099]
      //         p = [0.88110000198 - 0.1 + 2e-9, -1.86120000099 + 0.1 - 1e-9] = [0.78110000398, -1.76120000199]
      auto r = two_steps<AdamW>(dt, {1, -2}, {0.5, -1}, {0.5, -1}, 0.1, 0.1, AdamWOptions{});
      check_vec(r[0], {0.890000002, -1.880000001}, tol);
      check_vec(r[1], {0.78110000398, -1.76120000199}, tol);
    }
    {  // changing gradient, no weight decay
      // p = [0.5, -1.5], g1 = [0.2, -0.4], g2 = [-0.1, 0.3], lr 0.01, default betas/eps.
      // step 1: m = 0.1 g1 = [0.02, -0.04]; v = 0.001 g1^2 = [4e-5, 1.6e-4]; m^ = g1, v^ = g1^2
      //         p = [0.5 - 0.01 * 0.2/(0.2 + 1e-8), -1.5 + 0.01 * 0.4/(0.4 + 1e-8)] = [0.4900000005, -1.49000000025]
      // step 2: m = 0.9 m + 0.1 g2 = [0.008, -0.006]; v = 0.999 v + 0.001 g2^2 = [4.996e-5, 2.4984e-4]
      //         bc1 = 1 - 0.81 = 0.19, bc2 = 1 - 0.998001 = 0.001999
      //         m^ = [0.0421052632, -0.0315789474]; sqrt(v^) = [sqrt(0.0249924962), sqrt(0.1249824912)]
      //            = [0.1580901521, 0.3535285296]
      //         p = [0.49 - 0.01 * 0.0421052632 / 0.1580901621, -1.49 + 0.01 * 0.0315789474 / 0.3535285396]
      //           = [0.4873366302718676, -1.4891067502012136]  (the eps-level terms included)
      auto r = two_steps<AdamW>(dt, {0.5, -1.5}, {0.2, -0.4}, {-0.1, 0.3}, 0.01, 0.0, AdamWOptions{});
      check_vec(r[0], {0.4900000005, -1.49000000025}, tol);
      check_vec(r[1], {0.4873366302718676, -1.4891067502012136}, tol);
    }
  }
}

TEST_CASE("optimizers: gradients from backward, skipped parameters, zero_grad, lr per group") {
  Tensor a = param({1, 2}, DType::f32), b = param({3}, DType::f32);
  ParamGroup g0 = group_of({a}, 0.5), g1 = group_of({b}, 0.25);
  SGD opt({g0, g1});
  // loss = sum(a * [2, 4]) -> grad a = [2, 4]; b gets no gradient and must not move.
  sum(mul(a, Tensor::from_vector({2, 4}, {2}))).backward();
  REQUIRE(a.grad().defined());
  REQUIRE_FALSE(b.grad().defined());
  opt.step();
  check_close(a, {0, 0});
  check_close(b, {3});
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK(a.is_leaf());  // the update was not recorded
  opt.step();  // no gradients: nothing moves
  check_close(a, {0, 0});
  CHECK(opt.lr(0) == 0.5);
  CHECK(opt.lr(1) == 0.25);
  opt.set_lr(1, 0.125);
  CHECK(opt.lr(1) == 0.125);
  opt.set_lr(0.01);
  CHECK(opt.lr(0) == 0.01);
  CHECK(opt.lr(1) == 0.01);
  CHECK_THROWS_WITH_AS(opt.lr(2), doctest::Contains("group 2 does not exist"), Error);
  CHECK_THROWS_WITH_AS(SGD({group_of({Tensor::ones({2}, DType::bf16)}, 0.1)}), doctest::Contains("f32 or f64"), Error);
  CHECK_THROWS_WITH_AS(SGD({group_of({a}, 0.1)}, SgdOptions{0.0, true}), doctest::Contains("nesterov without momentum"),
                       Error);
}

TEST_CASE("optimizers: per-group overrides") {
  Tensor a = param({1, -2}, DType::f64), b = param({1, -2}, DType::f64);
  ParamGroup g0 = group_of({a}, 0.1), g1 = group_of({b}, 0.1);
  g1.momentum = 0.9;  // only group 1 uses momentum
  SGD opt({g0, g1});
  for (int i = 0; i < 2; ++i) {
    a.set_grad(Tensor::from_vector({0.5, -1}, {2}, DType::f64));
    b.set_grad(Tensor::from_vector({0.5, -1}, {2}, DType::f64));
    opt.step();
  }
  check_close(a, {0.9, -1.8}, 1e-14);     // plain SGD (see the hand values above)
  check_close(b, {0.855, -1.71}, 1e-14);  // momentum 0.9
}

TEST_CASE("make_param_groups: no decay on biases and 1-d parameters") {
  Tensor w = Tensor::ones({3, 2}), bias = Tensor::ones({3}), norm_w = Tensor::ones({3}), conv = Tensor::ones({2, 1, 3, 3});
  Tensor frozen = Tensor::ones({4, 4});
  for (Tensor* t : {&w, &bias, &norm_w, &conv}) t->requires_grad_(true);
  std::vector<std::pair<std::string, Tensor>> named = {
      {"fc.weight", w}, {"fc.bias", bias}, {"bn.weight", norm_w}, {"conv.weight", conv}, {"frozen", frozen}};
  auto groups = make_param_groups(named, 0.1, 5e-4, true);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"fc.weight", "conv.weight"});
  CHECK(groups[0].weight_decay == 5e-4);
  CHECK(groups[1].names == std::vector<std::string>{"fc.bias", "bn.weight"});
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[1].lr == 0.1);
  auto one = make_param_groups(named, 0.1, 5e-4, false);
  REQUIRE(one.size() == 1);
  CHECK(one[0].params.size() == 4);  // the frozen parameter is left out
  CHECK(one[0].weight_decay == 5e-4);
}

TEST_CASE("optimizers: exported state continues bit-exactly and import checks names and shapes") {
  auto run = [](bool use_adamw, bool interrupt) {
    Tensor w = random_tensor({3, 4}, 11, -1, 1, DType::f32), b = random_tensor({4}, 12, -1, 1, DType::f32);
    w.requires_grad_(true);
    b.requires_grad_(true);
    auto make = [&](std::vector<ParamGroup> groups) -> std::unique_ptr<Optimizer> {
      if (use_adamw) return std::make_unique<AdamW>(std::move(groups));
      return std::make_unique<SGD>(std::move(groups), SgdOptions{0.9, true});
    };
    auto opt = make({group_of({w}, 0.05, 0.01), group_of({b}, 0.02)});
    for (int step = 0; step < 6; ++step) {
      if (interrupt && step == 3) {  // rebuild the optimizer from its exported state
        OptimizerState saved = opt->export_state();
        opt = make({group_of({w}, 0.5, 0.5), group_of({b}, 0.5)});
        opt->import_state(saved);
      }
      w.set_grad(random_tensor({3, 4}, 100 + uint64_t(step), -1, 1, DType::f32));
      b.set_grad(random_tensor({4}, 200 + uint64_t(step), -1, 1, DType::f32));
      opt->step();
    }
    std::vector<double> out = w.to_vector();
    for (double v : b.to_vector()) out.push_back(v);
    return out;
  };
  for (bool adamw : {false, true}) {
    INFO(std::string(adamw ? "AdamW" : "SGD"));
    CHECK(run(adamw, false) == run(adamw, true));  // bit-exact
  }

  Tensor w = param({1, 2}, DType::f32);
  AdamW opt({group_of({w}, 0.1)});
  w.set_grad(Tensor::from_vector({1, 1}, {2}));
  opt.step();
  OptimizerState s = opt.export_state();
  CHECK(s.scalars.at("group0.param0.step") == 1.0);
  CHECK(s.scalars.at("group0.lr") == 0.1);
  OptimizerState bad = s;
  bad.tensors[0].second = Tensor::zeros({3});
  bad.tensors.emplace_back("group0.param7.exp_avg", Tensor::zeros({2}));
  bad.scalars.erase("group0.lr");
  bad.scalars["group0.param0.bogus"] = 1;
  try {
    opt.import_state(bad);
    FAIL("import_state accepted a bad state");
  } catch (const Error& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("mismatched 'group0.param0.exp_avg'") != std::string::npos);
    CHECK(msg.find("unexpected 'group0.param7.exp_avg'") != std::string::npos);
    CHECK(msg.find("missing 'group0.lr'") != std::string::npos);
    CHECK(msg.find("unexpected scalar 'group0.param0.bogus'") != std::string::npos);
  }
  // Nothing changed: the optimizer still holds its own state.
  CHECK(opt.export_state().scalars == s.scalars);
}
