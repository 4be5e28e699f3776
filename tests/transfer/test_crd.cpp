// CRD: the NCE loss and one memory-bank step worked by hand (Z set once, then frozen; the update
// after the value), the queue's InfoNCE by hand, gradient checks (bank and queue, through the
// embeddings), torchdistill's CRDLoss over two steps (fixture crd_bank) and the queue's torch
// transcription (crd_queue), the negative sampling (other classes, distinct, reproducible after
// a reload), ResNet <-> ViT through the registry, and the errors.
#include <algorithm>
#include <cmath>
#include <set>
#include "helpers.h"
#include "loss_fixture.h"
#include "loss_test_util.h"
#include "transfer/crd.h"

using namespace retort;
using retort::test::build_term;
using retort::test::check_close;
using retort::test::fmnist_config;
using retort::test::forward_step;
using retort::test::loss_recipe;
using retort::test::random_tensor;

namespace {

transfer::CrdOptions small_options(transfer::CrdMemory memory, int64_t dim, int64_t negatives, double tau) {
  transfer::CrdOptions o;
  o.memory = memory;
  o.dim = dim;
  o.negatives = negatives;
  o.temperature = tau;
  o.queue_size = 5;
  return o;
}

// Copies of a loss's buffers, and putting them back (a step's state, as a checkpoint would).
std::vector<Tensor> snapshot(const transfer::Loss& loss) {
  std::vector<Tensor> out;
  for (auto& [n, t] : loss.buffers()) out.push_back(t.clone());
  return out;
}
void restore(const transfer::Loss& loss, const std::vector<Tensor>& saved) {
  auto live = loss.buffers();
  REQUIRE(live.size() == saved.size());
  for (size_t i = 0; i < live.size(); ++i) Tensor(live[i].second).copy_(saved[i]);
}

}  // namespace

TEST_CASE("crd: NCE loss and a memory-bank step on a hand-computed example") {
  // N = 4, dim 2, K = 2, tau = 1, momentum 0.5; both banks hold the rows
  //   m[0] = (1, 0), m[1] = (0, 1), m[2] = (-1, 0), m[3] = (0, -1)
  // one example, id 0, e_s = (0.6, 0.8), e_t = (0.8, -0.6), contrast indices (0 | 1, 2):
  //   student anchor vs teacher memory: scores (0.6, 0.8, -0.6) -> out_s = (e^0.6, e^0.8, e^-0.6)
  //   teacher anchor vs student memory: scores (0.8, -0.6, -0.8) -> out_t = (e^0.8, e^-0.6, e^-0.8)
  //   Z_s = N * mean(out_s) = 4 (e^0.6 + e^0.8 + e^-0.6) / 3 = 6.12862849, Z_t = 4.29824204
  //   c = K / N = 0.5; nce(P) = -[log(P0/(P0+c+eps)) + log(c/(P1+c+eps)) + log(c/(P2+c+eps))]
  //   L = nce(out_s / Z_s) + nce(out_t / Z_t) = 2.79029227
  // update: m_s[0] = normalize(0.5 (1,0) + 0.5 (0.6,0.8)) = (2, 1)/sqrt(5),
  //         m_t[0] = normalize(0.5 (1,0) + 0.5 (0.8,-0.6)) = (3, -1)/sqrt(10); other rows unchanged
  // the same batch again: positives 1/sqrt(10) (student anchor) and 1/sqrt(5) (teacher anchor),
  // the negatives and Z unchanged: L = 3.16622893
  const double eps = 1e-7, c = 0.5;
  auto nce = [&](std::vector<double> out, double z) {
    double l = -std::log((out[0] / z) / (out[0] / z + c + eps));
    for (size_t j = 1; j < out.size(); ++j) l -= std::log(c / (out[j] / z + c + eps));
    return l;
  };
  const double zs = 4 * (std::exp(0.6) + std::exp(0.8) + std::exp(-0.6)) / 3;
  const double zt = 4 * (std::exp(0.8) + std::exp(-0.6) + std::exp(-0.8)) / 3;
  const double step1 = nce({std::exp(0.6), std::exp(0.8), std::exp(-0.6)}, zs) +
                       nce({std::exp(0.8), std::exp(-0.6), std::exp(-0.8)}, zt);
  const double step2 = nce({std::exp(1 / std::sqrt(10.0)), std::exp(0.8), std::exp(-0.6)}, zs) +
                       nce({std::exp(1 / std::sqrt(5.0)), std::exp(-0.6), std::exp(-0.8)}, zt);
  CHECK(step1 == doctest::Approx(2.790292270080344).epsilon(1e-12));
  CHECK(step2 == doctest::Approx(3.1662289318566303).epsilon(1e-12));

  // the NCE loss alone, on P = out_s / Z_s
  Tensor p = Tensor::from_vector({std::exp(0.6) / zs, std::exp(0.8) / zs, std::exp(-0.6) / zs}, {1, 3}, DType::f64);
  check_close(transfer::crd_nce_loss(p, 4), {nce({std::exp(0.6), std::exp(0.8), std::exp(-0.6)}, zs)}, 1e-12);

  transfer::CrdBank bank(4, 2, 2, 1.0, 0.5, 0, Device::cpu(), DType::f64);
  const std::vector<double> rows{1, 0, 0, 1, -1, 0, 0, -1};
  bank.memory_student.copy_(Tensor::from_vector(rows, {4, 2}, DType::f64));
  bank.memory_teacher.copy_(Tensor::from_vector(rows, {4, 2}, DType::f64));
  Tensor e_s = Tensor::from_vector({0.6, 0.8}, {1, 2}, DType::f64);
  Tensor e_t = Tensor::from_vector({0.8, -0.6}, {1, 2}, DType::f64);
  Tensor idx = Tensor::from_i64({0, 1, 2}, {1, 3});
  check_close(bank.z, {-1, -1}, 0);
  check_close(bank.loss_with_indices(e_s, e_t, {0}, idx), {step1}, 1e-12);
  check_close(bank.z, {zs, zt}, 1e-12);
  const double r5 = 1 / std::sqrt(5.0), r10 = 1 / std::sqrt(10.0);
  check_close(bank.memory_student, {2 * r5, r5, 0, 1, -1, 0, 0, -1}, 1e-12);
  check_close(bank.memory_teacher, {3 * r10, -r10, 0, 1, -1, 0, 0, -1}, 1e-12);
  check_close(bank.step, {1}, 0);
  check_close(bank.loss_with_indices(e_s, e_t, {0}, idx), {step2}, 1e-12);
  check_close(bank.z, {zs, zt}, 1e-12);  // frozen after the first batch
  check_close(bank.step, {2}, 0);

  // the embedding: normalize(x W^T + b), no eps
  Tensor w = Tensor::from_vector({1, 0, 0, 2}, {2, 2}, DType::f64);
  Tensor b = Tensor::from_vector({0, 1}, {2}, DType::f64);
  check_close(transfer::crd_embed(Tensor::from_vector({3, 1.5}, {1, 2}, DType::f64), w, b), {0.6, 0.8}, 1e-12);
  CHECK_THROWS_WITH_AS(bank.loss_with_indices(e_s, e_t, {0}, Tensor::from_i64({0, 1, 4}, {1, 3})),
                       doctest::Contains("contrast index 4 is not an index in [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(bank.loss_with_indices(e_s, e_t, {7}, idx), doctest::Contains("sample id 7"), Error);
}

TEST_CASE("crd: InfoNCE and the queue on a hand-computed example") {
  // dim 2, Q = 2, tau = 1, one pair a step.
  // step 1: e_s = (1, 0), e_t = (0.6, 0.8); the queue is empty: one logit each side, L = 0
  // step 2: e_s = (0, 1), e_t = (0.8, 0.6); queue_t = [(0.6, 0.8)], queue_s = [(1, 0)]
  //   student anchor: positive 0.6, negative 0.8 -> log(1 + e^0.2); teacher anchor: 0.6 vs 0.8, the same
  // step 3: e_s = (-1, 0), e_t = (0, 1); queue_t = [(0.6,0.8), (0.8,0.6)], queue_s = [(1,0), (0,1)]
  //   student anchor: 0 vs (-0.6, -0.8) -> log(1 + e^-0.6 + e^-0.8); teacher anchor: 0 vs (0, 1) -> log(2 + e)
  //   then the queue wraps: row 0 is overwritten by step 3's pair
  transfer::CrdQueue q(2, 2, 1.0, Device::cpu(), DType::f64);
  auto pair = [](double a, double b, double c, double d) {
    return std::pair{Tensor::from_vector({a, b}, {1, 2}, DType::f64), Tensor::from_vector({c, d}, {1, 2}, DType::f64)};
  };
  auto [s1, t1] = pair(1, 0, 0.6, 0.8);
  auto [s2, t2] = pair(0, 1, 0.8, 0.6);
  auto [s3, t3] = pair(-1, 0, 0, 1);
  check_close(q.loss(s1, t1), {0.0}, 1e-12);
  CHECK(q.filled() == 1);
  check_close(q.loss(s2, t2), {2 * std::log(1 + std::exp(0.2))}, 1e-12);
  CHECK(q.filled() == 2);
  check_close(q.loss(s3, t3), {std::log(1 + std::exp(-0.6) + std::exp(-0.8)) + std::log(2 + std::exp(1.0))}, 1e-12);
  check_close(q.queue_student, {-1, 0, 0, 1}, 1e-12);
  check_close(q.queue_teacher, {0, 1, 0.8, 0.6}, 1e-12);
  check_close(q.state, {2, 1}, 0);
  // tau = 0.5 doubles the logits: -log(e^1.2 / (e^1.2 + e^1.6)) = log(1 + e^0.4)
  check_close(transfer::crd_info_nce(s2, t2, t1, 0.5), {std::log(1 + std::exp(0.4))}, 1e-12);
  // a batch larger than the queue keeps its newest rows
  transfer::CrdQueue small(2, 2, 1.0, Device::cpu(), DType::f64);
  small.loss(Tensor::from_vector({1, 0, 0, 1, -1, 0}, {3, 2}, DType::f64),
             Tensor::from_vector({1, 0, 0, 1, -1, 0}, {3, 2}, DType::f64));
  check_close(small.queue_student, {0, 1, -1, 0}, 1e-12);
  check_close(small.state, {2, 0}, 0);
}

TEST_CASE("crd: gradient checks through the embeddings (bank with Z set, partly filled queue)") {
  for (auto memory : {transfer::CrdMemory::bank, transfer::CrdMemory::queue}) {
    INFO((memory == transfer::CrdMemory::bank ? "bank" : "queue"));
    transfer::CrdLoss loss("t", "pooled", "pooled", 5, 7, small_options(memory, 4, 6, 0.07), 12, 3, Device::cpu(),
                           DType::f64);
    const std::vector<int64_t> ids{2, 9, 5}, labels{0, 1, 2};
    Tensor f_t = random_tensor({3, 7}, 11, -1, 2);
    auto step = [&](const Tensor& f_s) {
      return memory == transfer::CrdMemory::bank ? loss.value(f_s, f_t, ids, labels) : loss.value(f_s, f_t);
    };
    // a first step sets Z (a constant afterwards) and fills part of the queue
    step(random_tensor({3, 5}, 12, -1, 2));
    // the contrast indices of the checked step are fixed: every evaluation reads the same state
    Tensor idx = memory == transfer::CrdMemory::bank ? loss.bank->draw(ids, labels) : Tensor();
    const auto state = snapshot(loss);
    retort::test::gradcheck(
        [&](const std::vector<Tensor>& in) {
          restore(loss, state);
          loss.embed_s->weight = in[1];
          loss.embed_s->bias = in[2];
          return memory == transfer::CrdMemory::bank ? loss.value_with_indices(in[0], f_t, ids, idx)
                                                     : loss.value(in[0], f_t);
        },
        {random_tensor({3, 5}, 13, -1, 2), random_tensor({4, 5}, 14), random_tensor({4}, 15)});
    // the teacher embedding trains too; the teacher features get no gradient
    restore(loss, state);
    Tensor ft = f_t.clone().requires_grad_();
    Tensor l = memory == transfer::CrdMemory::bank ? loss.value_with_indices(random_tensor({3, 5}, 13), ft, ids, idx)
                                                   : loss.value(random_tensor({3, 5}, 13), ft);
    l.backward();
    CHECK_FALSE(ft.grad().defined());
    CHECK(loss.embed_t->weight.grad().defined());
  }
}

TEST_CASE("crd: matches torchdistill's CRDLoss over two steps (Z frozen, banks updated)") {
  for (DType dtype : {DType::f64, DType::f32}) {
    // loaded per dtype: input() in f64 marks the file's own tensors as requiring a gradient
    const auto f = retort::test::load_loss_fixture("crd_bank");
    const int64_t n = int64_t(f.number("n_data"));
    transfer::CrdOptions o;
    o.dim = int64_t(f.number("dim"));
    o.negatives = int64_t(f.number("negatives"));
    o.temperature = f.number("temperature");
    o.momentum = f.number("momentum");
    transfer::CrdLoss loss("t", "pooled", "pooled", 6, 10, o, n, 0, Device::cpu(), dtype);
    std::map<std::string, Tensor> in;
    for (const char* k : {"f_s1", "f_t1", "f_s2", "f_t2", "w_s", "b_s", "w_t", "b_t"}) in[k] = f.input(k, dtype);
    loss.embed_s->weight = in["w_s"];
    loss.embed_s->bias = in["b_s"];
    loss.embed_t->weight = in["w_t"];
    loss.embed_t->bias = in["b_t"];
    loss.bank->memory_student.copy_(f.input("memory_student", dtype));
    loss.bank->memory_teacher.copy_(f.input("memory_teacher", dtype));
    auto ids = [&](const char* k) {
      std::vector<int64_t> v;
      for (double x : f.input(k).to_vector()) v.push_back(int64_t(x));
      return v;
    };
    Tensor l1 = loss.value_with_indices(in["f_s1"], in["f_t1"], ids("ids1"), f.input("contrast_idx1"));
    Tensor l2 = loss.value_with_indices(in["f_s2"], in["f_t2"], ids("ids2"), f.input("contrast_idx2"));
    const double tol = retort::test::loss_fixture_tolerance(dtype);
    retort::test::check_matches("loss1", l1.reshape({}), f.reference("extra.loss1").reshape({}), tol);
    retort::test::check_matches("loss2", l2.reshape({}), f.reference("extra.loss2").reshape({}), tol);
    retort::test::check_matches("z", loss.bank->z, f.reference("extra.z"), tol);
    retort::test::check_matches("memory_student", loss.bank->memory_student, f.reference("extra.memory_student"), tol);
    retort::test::check_matches("memory_teacher", loss.bank->memory_teacher, f.reference("extra.memory_teacher"), tol);
    retort::test::check_loss_fixture(f, add(l1, l2), in, dtype);
  }
}

TEST_CASE("crd: the queue matches its torch transcription over three steps") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const auto f = retort::test::load_loss_fixture("crd_queue");
    transfer::CrdOptions o;
    o.memory = transfer::CrdMemory::queue;
    o.dim = int64_t(f.number("dim"));
    o.queue_size = int64_t(f.number("queue_size"));
    o.temperature = f.number("temperature");
    transfer::CrdLoss loss("t", "pooled", "pooled", 6, 10, o, 0, 0, Device::cpu(), dtype);
    std::map<std::string, Tensor> in;
    for (const char* k : {"w_s", "b_s", "w_t", "b_t"}) in[k] = f.input(k, dtype);
    loss.embed_s->weight = in["w_s"];
    loss.embed_s->bias = in["b_s"];
    loss.embed_t->weight = in["w_t"];
    loss.embed_t->bias = in["b_t"];
    Tensor total;
    for (int s = 1; s <= int(f.number("steps")); ++s) {
      const std::string fs = "f_s" + std::to_string(s), ft = "f_t" + std::to_string(s);
      in[fs] = f.input(fs, dtype);
      in[ft] = f.input(ft, dtype);
      Tensor l = loss.value(in[fs], in[ft]);
      total = total.defined() ? add(total, l) : l;
    }
    const double tol = retort::test::loss_fixture_tolerance(dtype);
    retort::test::check_matches("queue_student", loss.queue->queue_student, f.reference("extra.queue_student"), tol);
    retort::test::check_matches("queue_teacher", loss.queue->queue_teacher, f.reference("extra.queue_teacher"), tol);
    check_close(loss.queue->state, f.reference("extra.state").to_vector(), 0);
    retort::test::check_loss_fixture(f, total, in, dtype);
  }
}

TEST_CASE("crd: negatives come from other classes, distinct, and the draw survives a reload") {
  // N = 40, labels i % 4 (10 per class); the first batch records 8 labels
  const int64_t n = 40, k = 12;
  transfer::CrdBank bank(n, 3, k, 0.07, 0.5, 7, Device::cpu(), DType::f64);
  std::vector<int64_t> all_ids, all_labels;
  for (int64_t i = 0; i < n; ++i) all_ids.push_back(i), all_labels.push_back(i % 4);
  const std::vector<int64_t> ids{0, 1, 2, 3, 4, 5, 6, 7}, labels{0, 1, 2, 3, 0, 1, 2, 3};
  // first batch: only 8 labels are known; the unseen 32 examples are candidates whatever their class
  auto rows = bank.draw(ids, labels).to_i64_vector();
  REQUIRE(rows.size() == ids.size() * size_t(k + 1));
  for (size_t b = 0; b < ids.size(); ++b) {
    CHECK(rows[b * size_t(k + 1)] == ids[b]);  // the positive: the example itself
    std::set<int64_t> seen;
    for (int64_t j = 1; j <= k; ++j) {
      const int64_t i = rows[b * size_t(k + 1) + size_t(j)];
      CHECK(seen.insert(i).second);  // without replacement
      CHECK(i != ids[b]);
      if (i < 8) CHECK(i % 4 != labels[b]);  // recorded labels: another class only
    }
  }
  check_close(bank.labels.slice(0, 0, 8), {0, 1, 2, 3, 0, 1, 2, 3}, 0);
  check_close(bank.labels.slice(0, 8, 10), {-1, -1}, 0);
  // all labels recorded: exactly the other classes (30 candidates, K = 12)
  bank.draw(all_ids, all_labels);
  auto e = random_tensor({8, 3}, 1);
  bank.loss(e, e, ids, labels);  // one step: the step counter moves, the next draw differs
  auto after = bank.draw(ids, labels).to_i64_vector();
  for (size_t b = 0; b < ids.size(); ++b)
    for (int64_t j = 1; j <= k; ++j) CHECK(after[b * size_t(k + 1) + size_t(j)] % 4 != labels[b]);
  CHECK(bank.draw(ids, labels).to_i64_vector() == after);  // the same state draws the same
  // a fresh bank loaded with these buffers (a resumed run) draws the same, then computes the same
  transfer::CrdBank other(n, 3, k, 0.07, 0.5, 7, Device::cpu(), DType::f64);
  for (size_t i = 0; i < bank.buffers().size(); ++i) Tensor(other.buffers()[i].second).copy_(bank.buffers()[i].second);
  CHECK(other.draw(ids, labels).to_i64_vector() == after);
  const double v = bank.loss(e, e, ids, labels).item();
  CHECK(other.loss(e, e, ids, labels).item() == v);
  CHECK(other.memory_student.to_vector() == bank.memory_student.to_vector());
  // another seed draws otherwise
  transfer::CrdBank reseeded(n, 3, k, 0.07, 0.5, 8, Device::cpu(), DType::f64);
  for (size_t i = 0; i < bank.buffers().size(); ++i)
    Tensor(reseeded.buffers()[i].second).copy_(bank.buffers()[i].second);
  CHECK(reseeded.draw(ids, labels).to_i64_vector() != bank.draw(ids, labels).to_i64_vector());
  // K larger than the pool: drawn with replacement, still other classes only
  transfer::CrdBank tiny(6, 3, 10, 0.07, 0.5, 7, Device::cpu(), DType::f64);
  auto many = tiny.draw({0, 1, 2, 3, 4, 5}, {0, 0, 0, 1, 1, 2}).to_i64_vector();
  for (int64_t j = 1; j <= 10; ++j) CHECK(many[size_t(j)] >= 3);  // example 0 (class 0): examples 3..5
  // every example of the bank in the anchor's class: no negative exists
  transfer::CrdBank one_class(2, 3, 4, 0.07, 0.5, 7, Device::cpu(), DType::f64);
  CHECK_THROWS_WITH_AS(one_class.draw({0, 1}, {0, 0}), doctest::Contains("no negative for sample 0"), Error);
  // the initial memory: uniform in [-sigma, sigma], sigma = 1/sqrt(dim/3) = 1 here
  const auto init = bank.memory_teacher.slice(0, 20, 40).to_vector();
  for (double x : init) CHECK(std::abs(x) <= 1.0);
  CHECK(*std::min_element(init.begin(), init.end()) < -0.5);
  CHECK(*std::max_element(init.begin(), init.end()) > 0.5);
}

TEST_CASE("crd: ResNet and ViT pooled features through the registry, both memories") {
  const int64_t patch = 7;  // a 4x4 token grid keeps the ViT fast
  auto resnet = std::shared_ptr<models::Model>(models::create_model("resnet8", fmnist_config(1, 2, patch)));
  auto vit = std::shared_ptr<models::Model>(models::create_model("vit_tiny", fmnist_config(2, 2, patch)));
  auto build = [&](const std::string& term, std::shared_ptr<models::Model> s, std::shared_ptr<models::Model> t,
                   int64_t dataset_size) {
    return build_term(loss_recipe(term), s, {{"t", t}}, {.dataset_size = dataset_size});
  };
  const Tensor x = random_tensor({4, 1, 28, 28}, 31, -1, 1, DType::f32);
  const std::vector<int64_t> ids{3, 0, 7, 5};
  const Tensor y = Tensor::from_i64({1, 0, 1, 2}, {4});
  for (auto [student, teacher] : {std::pair{resnet, vit}, std::pair{vit, resnet}})
    for (const char* memory : {"bank", "queue"}) {
      INFO(student->family() << " <- " << teacher->family() << ", memory " << memory);
      auto loss = build(std::string("{ name = \"crd\", teacher = \"t\", memory = \"") + memory + "\" }", student,
                        teacher, 8);
      CHECK(loss->needs_labels() == (std::string(memory) == "bank"));
      for (int step = 0; step < 2; ++step) {  // the queue's first step has no negatives (loss 0)
        for (auto* m : {student.get(), teacher.get()})
          for (auto p : m->parameters()) p.zero_grad();
        const auto taps = forward_step(*student, *teacher, x);
        transfer::StepInputs in{x, y, &taps.student, &taps.teachers, &ids, 8};
        Tensor l = loss->compute(in);
        CHECK(std::isfinite(l.item()));
        l.backward();
        if (step == 0 && std::string(memory) == "queue") continue;
        CHECK(l.item() > 0);
        bool student_grad = false;
        for (const auto& p : student->parameters()) student_grad |= p.grad().defined();
        CHECK(student_grad);
        for (const auto& p : teacher->parameters()) CHECK_FALSE(p.grad().defined());
        for (auto& [n, p] : loss->parameters()) CHECK_MESSAGE(p.grad().defined(), n);
      }
    }
  // the embedding sizes follow the taps: resnet8 pooled 64, vit_tiny pooled (CLS) 192
  auto l = build("{ name = \"crd\", teacher = \"t\" }", resnet, vit, 8);
  auto params = l->parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0].second.shape() == Shape{128, 64});
  CHECK(params[2].second.shape() == Shape{128, 192});
  CHECK(l->buffers().size() == 5);
  CHECK(l->buffers()[0].second.shape() == Shape{8, 128});

  // errors: a tap that does not exist, a bank without the training set's size, bad keys,
  // a step without sample ids
  CHECK_THROWS_WITH_AS(build("{ name = \"crd\", teacher = \"t\", student_tap = \"stage9\" }", resnet, vit, 8),
                       doctest::Contains("p.toml:11: crd: the student (resnet-cifar) has no tap 'stage9'; its taps are: stem"), Error);
  CHECK_THROWS_WITH_AS(build("{ name = \"crd\", teacher = \"t\" }", resnet, vit, 0),
                       doctest::Contains("p.toml:11: loss 'crd' with memory = \"bank\" keeps a row per training "
                                         "example, but the training set's size is unknown"),
                       Error);
  CHECK_NOTHROW(build("{ name = \"crd\", teacher = \"t\", memory = \"queue\" }", resnet, vit, 0));
  CHECK_THROWS_WITH_AS(build("{ name = \"crd\", teacher = \"t\", memory = \"stack\" }", resnet, vit, 8),
                       doctest::Contains("key 'memory' in [stages.losses.crd] must be one of \"bank\""), Error);
  CHECK_THROWS_WITH_AS(build("{ name = \"crd\", teacher = \"t\", queue_size = 0 }", resnet, vit, 8),
                       doctest::Contains("queue_size"), Error);
  CHECK_THROWS_WITH_AS(build("{ name = \"crd\", teacher = \"t\", momentum = 1.5 }", resnet, vit, 8),
                       doctest::Contains("momentum"), Error);
  models::Taps st{{"pooled", random_tensor({4, 64}, 1, -1, 1, DType::f32)}};
  std::map<std::string, models::Taps> tt{{"t", {{"pooled", random_tensor({4, 192}, 2, -1, 1, DType::f32)}}}};
  transfer::StepInputs no_ids{x, y, &st, &tt};
  CHECK_THROWS_WITH_AS(l->compute(no_ids), doctest::Contains("needs each example's position"), Error);

  const LossSchema* schema = find_loss_schema("crd");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == 0.8);
  CHECK(std::get<int64_t>(*schema->find("negatives")->default_value) == 16384);
  CHECK(std::get<double>(*schema->find("temperature")->default_value) == 0.07);
}
