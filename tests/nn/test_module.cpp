// Module system: registration and dotted names, train/eval propagation, state dict round
// trips, strict loading errors, device/dtype moves in place, init schemes.
#include <cmath>
#include "engine/nn/nn.h"
#include "helpers.h"

using namespace retort;
using retort::test::check_close;

namespace {
// A two-level module: a Linear, a BatchNorm2d and a Sequential of (Conv2d, ReLU, Conv2d).
struct Toy : nn::Module {
  std::shared_ptr<nn::Linear> head;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Sequential> body;
  Tensor scale;
  explicit Toy(Generator& gen) {
    scale = Tensor::ones({3});
    register_parameter("scale", &scale);
    body = register_module("body", std::make_shared<nn::Sequential>());
    body->push_back(std::make_shared<nn::Conv2d>(2, 3, nn::Conv2dSpec{3, 1, 1, 1, 1, false}, gen));
    body->push_back(std::make_shared<nn::ReLU>());
    body->push_back(std::make_shared<nn::Conv2d>(3, 3, nn::Conv2dSpec{1, 1, 0, 1, 1, true}, gen));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(3));
    head = register_module("head", std::make_shared<nn::Linear>(3, 4, gen));
  }
  std::string type_name() const override { return "Toy"; }
};

std::vector<std::string> names_of(const nn::NamedTensors& nt) {
  std::vector<std::string> out;
  for (auto& [n, t] : nt) out.push_back(n);
  return out;
}
}  // namespace

TEST_CASE("module: dotted names, registration order, optional bias skipped") {
  Generator gen(1);
  Toy toy(gen);
  CHECK(names_of(toy.named_parameters()) ==
        std::vector<std::string>{"scale", "body.0.weight", "body.2.weight", "body.2.bias", "bn.weight", "bn.bias",
                                 "head.weight", "head.bias"});
  CHECK(names_of(toy.named_buffers()) ==
        std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
  CHECK(names_of(toy.named_parameters(false)) == std::vector<std::string>{"scale"});
  std::vector<std::string> mods;
  for (auto& [n, m] : toy.named_modules()) mods.push_back(n + ":" + m->type_name());
  CHECK(mods == std::vector<std::string>{":Toy", "body:Sequential", "body.0:Conv2d", "body.1:ReLU", "body.2:Conv2d",
                                         "bn:BatchNorm2d", "head:Linear"});
  // 3 + 3*2*9 + 3*3 + 3 + 3 + 3 + 4*3 + 4
  CHECK(toy.num_parameters() == 3 + 54 + 9 + 3 + 3 + 3 + 12 + 4);
  for (auto& p : toy.parameters()) CHECK(p.requires_grad());
  for (auto& b : toy.buffers()) CHECK_FALSE(b.requires_grad());
  CHECK(toy.find_tensor("body.2.bias") != nullptr);
  CHECK(toy.find_tensor("body.0.bias") == nullptr);  // bias=false
  CHECK(toy.find_tensor("bn.running_var")->shape() == Shape{3});
  CHECK(toy.find_tensor("nope.weight") == nullptr);
  CHECK(toy.str().find("(head): Linear(in_features=3, out_features=4, bias=true)") != std::string::npos);
  CHECK_THROWS_WITH_AS(toy.forward(Tensor::ones({1})), doctest::Contains("Toy has no single-tensor forward"), Error);
}

TEST_CASE("module: duplicate or dotted names are rejected") {
  struct Bad : nn::Module {
    Tensor a, b;
    void add_twice() {
      a = Tensor::ones({1});
      register_parameter("a", &a);
      register_buffer("a", &b);
    }
    void add_dotted() { register_parameter("x.y", &b); }
  };
  Bad bad;
  CHECK_THROWS_WITH_AS(bad.add_twice(), doctest::Contains("registered twice"), Error);
  CHECK_THROWS_WITH_AS(bad.add_dotted(), doctest::Contains("contain no '.'"), Error);
}

TEST_CASE("module: train/eval propagates to every descendant, also to children added later") {
  Generator gen(2);
  Toy toy(gen);
  toy.eval();
  for (auto& [n, m] : toy.named_modules()) CHECK_FALSE(m->is_training());
  toy.body->push_back(std::make_shared<nn::ReLU>());
  CHECK_FALSE(toy.body->child("3")->is_training());
  toy.train();
  for (auto& [n, m] : toy.named_modules()) CHECK(m->is_training());
}

TEST_CASE("module: state dict round trip restores every parameter and buffer") {
  Generator g1(10), g2(20);
  Toy a(g1), b(g2);
  a.find_tensor("bn.running_mean")->copy_(Tensor::from_vector({0.5, -1, 2}, {3}));
  a.find_tensor("bn.num_batches_tracked")->fill_(7);
  CHECK(a.find_tensor("head.weight")->to_vector() != b.find_tensor("head.weight")->to_vector());
  auto report = b.load_state_dict(a.state_dict());
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  for (auto& [name, t] : a.state_dict()) {
    INFO(name);
    CHECK(b.find_tensor(name)->to_vector() == t.to_vector());
  }
  // The loaded values are copies, not shared storage.
  a.find_tensor("head.bias")->fill_(3.0);
  CHECK(b.find_tensor("head.bias")->to_vector() != a.find_tensor("head.bias")->to_vector());
  // Parameters stay parameters after loading.
  CHECK(b.find_tensor("head.weight")->requires_grad());
}

TEST_CASE("module: strict loading names missing and unexpected keys; shape mismatch names the key") {
  Generator gen(3);
  Toy toy(gen);
  auto sd = toy.state_dict();
  std::map<std::string, Tensor> dict(sd.begin(), sd.end());
  dict.erase("head.bias");
  dict["extra.weight"] = Tensor::ones({2});
  CHECK_THROWS_WITH_AS(toy.load_state_dict(dict), doctest::Contains("missing keys [head.bias], unexpected keys [extra.weight]"),
                       Error);
  auto report = toy.load_state_dict(dict, false);
  CHECK(report.missing == std::vector<std::string>{"head.bias"});
  CHECK(report.unexpected == std::vector<std::string>{"extra.weight"});
  dict = std::map<std::string, Tensor>(sd.begin(), sd.end());
  dict["head.weight"] = Tensor::ones({3, 4});
  CHECK_THROWS_WITH_AS(toy.load_state_dict(dict), doctest::Contains("'head.weight' has shape [4, 3] in the module but [3, 4]"),
                       Error);
}

TEST_CASE("module: to(dtype) converts floating tensors in place, keeps i64 buffers, drops grads") {
  Generator gen(4);
  Toy toy(gen);
  Tensor w = *toy.find_tensor("head.weight");  // a handle like an optimizer would hold
  auto before = w.to_vector();
  w.set_grad(Tensor::ones({4, 3}));
  toy.to(DType::f64);
  CHECK(w.dtype() == DType::f64);
  CHECK(w.requires_grad());
  CHECK_FALSE(w.grad().defined());
  check_close(w, before, 1e-7);
  CHECK(toy.find_tensor("bn.num_batches_tracked")->dtype() == DType::i64);
  for (auto& [n, t] : toy.named_parameters()) CHECK(t.dtype() == DType::f64);
  CHECK(toy.device() == Device::cpu());
  CHECK_THROWS_AS(toy.to(DType::i64), Error);
}

TEST_CASE("module: requires_grad_(false) freezes, zero_grad drops gradients") {
  Generator gen(5);
  Toy toy(gen);
  toy.requires_grad_(false);
  CHECK(toy.num_parameters(true) == 0);
  toy.requires_grad_(true);
  CHECK(toy.num_parameters(true) == toy.num_parameters());
  toy.scale.set_grad(Tensor::ones({3}));
  toy.zero_grad();
  CHECK_FALSE(toy.scale.grad().defined());
}

TEST_CASE("init: PyTorch default bounds for Linear/Conv2d and reproducibility from the seed") {
  Generator g1(42), g2(42);
  nn::Linear a(50, 40, g1), b(50, 40, g2);
  CHECK(a.weight.to_vector() == b.weight.to_vector());
  CHECK(a.bias.to_vector() == b.bias.to_vector());
  // kaiming_uniform(a=sqrt(5)): bound = sqrt(2/6) * sqrt(3/fan_in) = 1/sqrt(fan_in).
  double bound = 1.0 / std::sqrt(50.0), lo = 1e9, hi = -1e9, m = 0;
  for (double v : a.weight.to_vector()) lo = std::min(lo, v), hi = std::max(hi, v), m += v;
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi > 0.9 * bound);  // 2000 draws reach close to the edge
  CHECK(std::abs(m / 2000) < 0.1 * bound);
  nn::Conv2d c(4, 6, nn::Conv2dSpec{3, 1, 1, 1, 2, true}, g1);  // groups 2: fan_in = 2*9
  CHECK(c.weight.shape() == Shape{6, 2, 3, 3});
  for (double v : c.bias.to_vector()) CHECK(std::abs(v) <= 1.0 / std::sqrt(18.0));
}

TEST_CASE("init: kaiming_normal fan_out and trunc_normal statistics") {
  Generator gen(7);
  Tensor w = Tensor::empty({64, 32, 3, 3});
  nn::kaiming_normal_(w, gen, 0.0, nn::FanMode::fan_out);  // std = sqrt(2 / (64*9))
  auto v = w.to_vector();
  double s = 0, s2 = 0;
  for (double x : v) s += x, s2 += x * x;
  double n = double(v.size()), sd = std::sqrt(s2 / n - (s / n) * (s / n)), want = std::sqrt(2.0 / (64 * 9));
  CHECK(std::abs(sd - want) < 0.03 * want);  // 18432 draws: relative s.e. ~0.5%
  Tensor t = Tensor::empty({5000});
  nn::trunc_normal_(t, gen, 0.0, 1.0, -0.5, 0.5);
  for (double x : t.to_vector()) CHECK((x >= -0.5 && x <= 0.5));
  Tensor keep = Tensor::full({3}, 9.0);
  {
    nn::SkipInitGuard skip;
    nn::normal_(keep, gen, 0.0, 1.0);
  }
  check_close(keep, {9, 9, 9});
}

TEST_CASE("init: the parallel fill gives the same values as sequential Generator draws") {
  Generator g(123), ref(123);
  Tensor t = Tensor::empty({70001}, DType::f64);  // above the parallel threshold
  nn::normal_(t, g, 1.0, 2.0);
  CHECK(g.offset() == 70001);
  auto v = t.to_vector();
  bool same = true;
  for (size_t i = 0; i < v.size(); ++i) same &= v[i] == 1.0 + 2.0 * ref.normal();
  CHECK(same);
  Tensor u = Tensor::empty({70001}, DType::f64);
  nn::uniform_(u, g, -3.0, 5.0);
  auto vu = u.to_vector();
  same = true;
  for (size_t i = 0; i < vu.size(); ++i) same &= vu[i] == -3.0 + 8.0 * ref.uniform();
  CHECK(same);
}
