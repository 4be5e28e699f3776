// PKT: the neighbour distributions and the loss of hand-placed vectors (two values of eps), f64
// gradient checks, the torchdistill / RepDistiller reference fixture, ResNet <-> ViT through the
// registry, and the errors.
#include <cmath>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/pkt.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::check_trains_student;
using retort::test::fmnist_config;
using retort::test::random_tensor;

namespace {
// The hand derivation below, for a given eps.
struct HandPkt {
  double ps[4], pt[4], loss;
};
HandPkt hand_pkt(double e) {
  // student rows (3,4) and (4,-3): norm 5, orthogonal. x^ = x / (5 + e), so
  //   K_s = [[q, 0], [0, q]], q = 25 / (5+e)^2;  K'_s = [[(q+1)/2, 1/2], [1/2, (q+1)/2]]
  //   P_s rows: [(q+1)/(q+2), 1/(q+2)] and [1/(q+2), (q+1)/(q+2)]
  // teacher rows (1,0) and (2,0): parallel, norms 1 and 2. x^ = (1/(1+e), 0), (2/(2+e), 0):
  //   K_t = [[u, v], [v, w]], u = 1/(1+e)^2, v = 2/((1+e)(2+e)), w = 4/(2+e)^2
  //   P_t rows: [(u+1), (v+1)] / (u+v+2) and [(v+1), (w+1)] / (v+w+2)
  // L = (1/4) sum_ij P_t,ij log((P_t,ij + e) / (P_s,ij + e))
  HandPkt h{};
  const double q = 25 / ((5 + e) * (5 + e));
  const double u = 1 / ((1 + e) * (1 + e)), v = 2 / ((1 + e) * (2 + e)), w = 4 / ((2 + e) * (2 + e));
  const double ps[4] = {(q + 1) / (q + 2), 1 / (q + 2), 1 / (q + 2), (q + 1) / (q + 2)};
  const double pt[4] = {(u + 1) / (u + v + 2), (v + 1) / (u + v + 2), (v + 1) / (v + w + 2), (w + 1) / (v + w + 2)};
  h.loss = 0;
  for (int k = 0; k < 4; ++k) {
    h.ps[k] = ps[k];
    h.pt[k] = pt[k];
    h.loss += pt[k] * std::log((pt[k] + e) / (ps[k] + e)) / 4;
  }
  return h;
}
}  // namespace

TEST_CASE("pkt: distributions and loss of hand-placed vectors") {
  Tensor s = Tensor::from_vector({3, 4, 4, -3}, {2, 2}, DType::f64);
  Tensor t = Tensor::from_vector({1, 0, 2, 0}, {2, 2}, DType::f64);
  for (double e : {1e-7, 0.5}) {  // 0.5 makes the eps placement (norm + eps, inside the log) visible
    INFO("eps " << e);
    const HandPkt h = hand_pkt(e);
    check_close(transfer::pkt_probabilities(s, e), {h.ps[0], h.ps[1], h.ps[2], h.ps[3]}, 1e-12);
    check_close(transfer::pkt_probabilities(t, e), {h.pt[0], h.pt[1], h.pt[2], h.pt[3]}, 1e-12);
    check_close(transfer::pkt_loss(s, t, e), {h.loss}, 1e-12);
  }
  // eps = 1e-7 is the default; with it, q ~ 1: P_s ~ [2/3, 1/3], P_t ~ [1/2, 1/2] and
  // L ~ (1/4) 2 (1/2 log(3/4) + 1/2 log(3/2)) = (1/4) log(9/8)
  CHECK(transfer::pkt_loss(s, t).item() == doctest::Approx(0.25 * std::log(9.0 / 8.0)).epsilon(1e-5));
  check_close(transfer::pkt_loss(s, t), {hand_pkt(1e-7).loss}, 1e-12);
  // identical directions give zero; maps are flattened
  check_close(transfer::pkt_loss(s, mul(s, 3.0)), {0.0}, 1e-12);
  check_close(transfer::pkt_loss(s.reshape({2, 1, 2, 1}), t.reshape({2, 2, 1})), {hand_pkt(1e-7).loss}, 1e-12);
  // an all-zero row: x^ = 0, cosines 0 with everything (K' = 1/2), finite loss and gradient
  Tensor z = Tensor::from_vector({0, 0, 3, 4, 1, 1}, {3, 2}, DType::f64).requires_grad_();
  Tensor l = transfer::pkt_loss(z, random_tensor({3, 2}, 21));
  REQUIRE(std::isfinite(l.item()));
  l.backward();
  for (double g : z.grad().to_vector()) CHECK(std::isfinite(g));
}

TEST_CASE("pkt: gradient checks w.r.t. the student features (f64)") {
  Tensor t = random_tensor({5, 6}, 32);
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::pkt_loss(in[0], t); },
                          {random_tensor({5, 4}, 31)});
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::pkt_loss(in[0], t, 0.5); },
                          {random_tensor({5, 4}, 33)});
  retort::test::gradcheck([](const std::vector<Tensor>& in) { return transfer::pkt_probabilities(in[0]); },
                          {random_tensor({4, 3}, 34)});
  retort::test::gradcheck([&](const std::vector<Tensor>& in) { return transfer::pkt_loss(in[0], t); },
                          {random_tensor({5, 2, 2, 2}, 35)});
  Tensor s = random_tensor({5, 4}, 36).requires_grad_();
  Tensor tt = t.detach().clone().requires_grad_();
  transfer::pkt_loss(s, tt).backward();
  CHECK(s.grad().defined());
  CHECK_FALSE(tt.grad().defined());
}

TEST_CASE("pkt: matches torchdistill's PKTLoss (= RepDistiller's PKT.py) on the reference fixture") {
  const auto f = retort::test::load_loss_fixture("pkt");
  REQUIRE(f.number("eps") == 1e-7);
  CHECK(std::stod(f.meta("repdistiller_loss")) == doctest::Approx(f.reference("loss").item()).epsilon(1e-13));
  for (DType dtype : {DType::f64, DType::f32}) {
    Tensor s = f.input("student", dtype), t = f.input("teacher", dtype);
    retort::test::check_loss_fixture(f, transfer::pkt_loss(s, t), {{"student", s}, {"teacher", t}}, dtype);
  }
}

TEST_CASE("pkt: pooled features across architectures (resnet8 <-> vit_tiny) through the registry") {
  auto resnet = models::create_model("resnet8", fmnist_config(1));
  auto vit = models::create_model("vit_tiny", fmnist_config(2));
  const std::string term = "{ name = \"pkt\", teacher = \"t\" }";
  // resnet8 pooled [B, 64] vs ViT pooled (CLS) [B, 192]; fresh models for each pairing: a teacher must end
  // without gradients
  auto r2v = build_term(term, resnet, vit);
  CHECK(r2v->student_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teacher_taps() == std::vector<std::string>{"pooled"});
  CHECK(r2v->teachers() == std::vector<std::string>{"t"});
  CHECK(r2v->parameters().empty());
  check_trains_student(*r2v, *resnet, *vit, {.batch = 4, .seed = 87, .finite_grads = true});
  auto vit_student = models::create_model("vit_tiny", fmnist_config(3));
  auto resnet_teacher = models::create_model("resnet8", fmnist_config(4));
  auto v2r = build_term(term, vit_student, resnet_teacher);
  check_trains_student(*v2r, *vit_student, *resnet_teacher, {.batch = 4, .seed = 87, .finite_grads = true});
}

TEST_CASE("pkt: schema, defaults and errors") {
  const LossSchema* schema = find_loss_schema("pkt");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 30000.0);
  CHECK(std::get<double>(*schema->find("eps")->default_value) == 1e-7);
  CHECK(std::get<std::string>(*schema->find("teacher_tap")->default_value) == "pooled");
  auto student = models::create_model("resnet8", fmnist_config(4));
  auto teacher = models::create_model("wrn_16_2", fmnist_config(5));
  CHECK_THROWS_WITH_AS(build_term("{ name = \"pkt\", teacher = \"t\", student_tap = \"pool\" }", student, teacher),
                       doctest::Contains("p.toml:11: pkt: the student (resnet-cifar) has no tap 'pool'; its taps are"),
                       Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"pkt\", teacher = \"t\", eps = 0.0 }", student, teacher),
                       doctest::Contains("key 'eps'"), Error);
  CHECK_THROWS_WITH_AS(build_term("{ name = \"pkt\", teacher = \"s\" }", student, teacher),
                       doctest::Contains("which is not a teacher of this stage"), Error);
  CHECK_THROWS_WITH_AS(transfer::pkt_loss(random_tensor({3, 2}, 1), random_tensor({4, 2}, 2)),
                       doctest::Contains("must share batch size"), Error);
}
