// A training step makes no host read (train/step_health.h): host reads counted the way a GPU
// would synchronise (engine/tensor.h's host_read_count) over whole KD steps of each loss, and
// exactly one per read interval; the device-side bookkeeping adds up the same loss and hits the
// host would; a non-finite loss makes the optimizer skip its update on the device and stops the
// run at the next read, naming the step, and so does a NaN gradient under a finite loss, with or
// without clipping; cross_entropy's deferred label check makes no read.
#include <doctest/doctest.h>
#include <cmath>
#include <filesystem>
#include <limits>
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "helpers.h"
#include "recipe_test_util.h"
#include "train/bench_stage.h"
#include "train/recipe.h"
#include "train/runner.h"
#include "train/step_health.h"
#include "train/train_step.h"

using namespace retort;
namespace fs = std::filesystem;

namespace {

// Host reads made by `fn`.
template <class Fn>
int64_t host_reads_of(Fn&& fn) {
  const int64_t before = host_read_count();
  fn();
  return host_read_count() - before;
}

}  // namespace

TEST_CASE("step syncs: host reads are counted where a GPU would synchronise") {
  const Tensor t = Tensor::full({3}, 2.0);
  CHECK(host_reads_of([&] { (void)sum(t).item(); }) == 1);
  CHECK(host_reads_of([&] { (void)t.to_vector(); }) == 1);
  CHECK(host_reads_of([&] { (void)mul(add(t, 1.0), t); }) == 0);
}

TEST_CASE("step syncs: StepHealth adds up loss and hits on the device and reads them once") {
  StepHealth h(Device::cpu(), 2);
  // Row 0 predicts class 1 (label 1: a hit); row 1 ties classes 0 and 2 (argmax 0, label 2: a
  // miss); row 2 has a NaN (never a hit, even though argmax might land on its label).
  const Tensor logits = Tensor::from_vector({0.1, 0.9, 0.0, 0.5, 0.1, 0.5, NAN, 0.2, 0.1}, {3, 3}, DType::f32);
  const Tensor y = Tensor::from_i64({1, 2, 0}, {3});
  const int64_t reads = host_reads_of([&] {
    h.record(Tensor::scalar(1.5), {Tensor::scalar(1.0), Tensor::scalar(0.5)}, logits, y);
    h.record(Tensor::scalar(2.5), {Tensor::scalar(2.0), Tensor::scalar(0.5)}, logits, y);
  });
  CHECK(reads == 0);
  CHECK(h.pending() == 2);
  StepHealth::Reading r;
  CHECK(host_reads_of([&] { r = h.read(); }) == 1);
  CHECK(r.steps == 2);
  CHECK(r.loss_sum == 4.0);
  CHECK(r.last_loss == 2.5);
  CHECK(r.hits == 2);  // one per step
  CHECK(r.first_bad == -1);
  CHECK(h.pending() == 0);
  CHECK(h.skip_flag().item() == 0.0);
}

TEST_CASE("step syncs: a non-finite loss raises the skip flag and is read with its step and terms") {
  StepHealth h(Device::cpu(), 2);
  const double inf = std::numeric_limits<double>::infinity();
  h.record(Tensor::scalar(1.0), {Tensor::scalar(1.0), Tensor::scalar(0.0)}, Tensor(), Tensor());
  CHECK(h.skip_flag().item() == 0.0);
  h.record(Tensor::scalar(inf), {Tensor::scalar(3.0), Tensor::scalar(inf)}, Tensor(), Tensor());
  CHECK(h.skip_flag().item() == 1.0);
  h.record(Tensor::scalar(NAN), {Tensor::scalar(NAN), Tensor::scalar(NAN)}, Tensor(), Tensor());  // not the first
  CHECK(h.skip_flag().item() == 1.0);
  const StepHealth::Reading r = h.read();
  CHECK(r.first_bad == 1);
  REQUIRE(r.terms_at_first_bad.size() == 2);
  CHECK(r.terms_at_first_bad[0] == 3.0);
  CHECK(std::isinf(r.terms_at_first_bad[1]));
  CHECK(h.skip_flag().item() == 0.0);  // a new interval
}

TEST_CASE("step syncs: a non-finite gradient norm under a finite loss is a bad step too") {
  StepHealth h(Device::cpu(), 1);
  h.record(Tensor::scalar(1.0), {Tensor::scalar(1.0)}, Tensor(), Tensor());
  h.record_gradient_norm(Tensor::scalar(2.0));
  CHECK(h.skip_flag().item() == 0.0);
  h.record(Tensor::scalar(1.5), {Tensor::scalar(1.5)}, Tensor(), Tensor());
  h.record_gradient_norm(Tensor::scalar(NAN));
  CHECK(h.skip_flag().item() == 1.0);
  h.record(Tensor::scalar(NAN), {Tensor::scalar(NAN)}, Tensor(), Tensor());  // later: not the first
  StepHealth::Reading r = h.read();
  CHECK(r.first_bad == 1);
  CHECK(r.gradient_at_first_bad);
  CHECK(std::isfinite(r.terms_at_first_bad[0]));
  // A non-finite loss first: the gradient flag stays off.
  h.record(Tensor::scalar(NAN), {Tensor::scalar(NAN)}, Tensor(), Tensor());
  h.record_gradient_norm(Tensor::scalar(NAN));
  r = h.read();
  CHECK(r.first_bad == 0);
  CHECK_FALSE(r.gradient_at_first_bad);
}

TEST_CASE("step syncs: the skip flag leaves the weights and the momentum untouched") {
  Tensor w = test::random_tensor({4, 3}, 5, -1, 1, DType::f32);
  w.requires_grad_(true);
  ParamGroup g;
  g.params = {w};
  g.lr = 0.1;
  SGD sgd({g}, SgdOptions{0.9, false});
  const Tensor x = test::random_tensor({2, 3}, 6, -1, 1, DType::f32);
  auto step = [&](double poison) {
    StepHealth h(Device::cpu(), 1);
    Tensor loss = add(sum(linear(x, w)), poison);
    h.record(loss, {loss}, Tensor(), Tensor());
    sgd.zero_grad();
    loss.backward();
    sgd.step(h.skip_flag());
  };
  step(0.0);  // a finite step: the weights move and the momentum exists
  const Tensor before = w.detach().clone();
  const OptimizerState state_before = sgd.export_state();
  step(NAN);
  CHECK(test::same_bits(w.detach(), before));
  const OptimizerState state_after = sgd.export_state();
  REQUIRE(state_after.tensors.size() == state_before.tensors.size());
  for (size_t i = 0; i < state_after.tensors.size(); ++i)
    CHECK(test::same_bits(state_after.tensors[i].second, state_before.tensors[i].second));
  step(0.0);
  CHECK_FALSE(test::same_bits(w.detach(), before));
}

TEST_CASE("step syncs: a NaN gradient under a finite loss skips the update without clipping, in both step forms") {
  // sqrt(sum((w - w')^2)) at w' = w: the loss is 0, its gradient 0 * inf = NaN.
  Tensor w = test::random_tensor({4, 3}, 7, -1, 1, DType::f32);
  w.requires_grad_(true);
  const nn::NamedTensors trained = {{"w", w}};
  ParamGroup g;
  g.params = {w};
  g.lr = 0.1;
  SGD sgd({g}, SgdOptions{0.9, false});
  StageSpec stage;
  REQUIRE(stage.clip_grad_norm == 0);  // no clipping: the norm is still checked
  StepParts parts;
  parts.stage = &stage;
  parts.optimizer = &sgd;
  parts.trained = &trained;
  auto backward = [&] {
    const Tensor d = sub(w, w.detach());
    Tensor loss = sqrt(sum(mul(d, d)));
    sgd.zero_grad();
    loss.backward();
    return loss;
  };
  const Tensor before = w.detach().clone();
  StepHealth h(Device::cpu(), 1);
  int64_t reads = host_read_count();
  const Tensor loss = backward();
  h.record(loss, {loss}, Tensor(), Tensor());
  update_parameters(parts, h);
  CHECK(host_read_count() == reads);
  CHECK(std::isnan(w.grad().to_vector()[0]));
  CHECK(test::same_bits(w.detach(), before));
  StepHealth::Reading r = h.read();
  CHECK(r.first_bad == 0);
  CHECK(r.gradient_at_first_bad);
  CHECK(r.terms_at_first_bad[0] == 0.0);
  CHECK_THROWS_WITH_AS(fail_nonfinite_step(parts, r, "step 0"),
                       doctest::Contains("step 0: the gradient norm is not finite while every loss term is"), Error);
  // The data-parallel form reads the norm and stops before the weights move.
  backward();
  reads = host_read_count();
  CHECK_THROWS_WITH_AS(update_parameters_checked(parts, [] { return std::string("step 3"); }),
                       doctest::Contains("step 3: the gradient norm is NaN while every loss term is finite"), Error);
  CHECK(host_read_count() == reads + 1);
  CHECK(test::same_bits(w.detach(), before));
  // A finite gradient: both forms step.
  w.set_grad(Tensor::full({4, 3}, 0.5, DType::f32));
  update_parameters_checked(parts, [] { return std::string("step 4"); });
  CHECK_FALSE(test::same_bits(w.detach(), before));
}

TEST_CASE("step syncs: cross_entropy's deferred label check reads nothing and makes a bad label NaN") {
  const Tensor logits = test::random_tensor({4, 3}, 9, -1, 1, DType::f32);
  const Tensor good = Tensor::from_i64({0, 1, 2, 1}, {4}), bad = Tensor::from_i64({0, 1, 3, 1}, {4});
  CHECK(host_reads_of([&] { (void)cross_entropy(logits, good); }) == 1);  // the immediate check
  CHECK_THROWS_WITH_AS(cross_entropy(logits, bad), doctest::Contains("label 3 at row 2 is out of range"), Error);
  DeferLabelCheck deferred;
  Tensor ok, nan;
  CHECK(host_reads_of([&] {
          ok = cross_entropy(logits, good);
          nan = cross_entropy(logits, bad);
        }) == 0);
  CHECK(std::isfinite(ok.item()));
  CHECK(std::isnan(nan.item()));
}

TEST_CASE("step syncs: a KD step of every batch-splittable loss makes no host read, its read one") {
  // Each loss term with the settings that make it run on resnet8 taps. CRD reads on the host
  // each step (RepDistiller's negative sampling and its memory bank's bookkeeping run there: 5
  // reads, a known cost); it is checked to make exactly that many, so a new read anywhere still
  // fails here.
  struct Case {
    std::string losses;
    int64_t reads_per_step;
  };
  const std::vector<Case> cases = {
      {R"({ name = "ce", weight = 0.1 }, { name = "kd", teacher = "teacher", weight = 0.9 })", 0},
      {R"({ name = "ce" }, { name = "fitnet", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "at", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "fsp", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "aft", teachers = ["teacher"] })", 0},
      {R"({ name = "ce" }, { name = "nst", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "dkd", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "sp", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "rkd", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "pkt", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "vid", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "ofd", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "reviewkd", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "dist", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "align_uniform", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "cc", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "kdsvd", teacher = "teacher" })", 0},
      {R"({ name = "ce" }, { name = "crd", teacher = "teacher" })", 5},
  };
  for (const Case& c : cases) {
    for (const std::string extra : {"", "clip_grad_norm = 1.0", "precision = \"bf16\""}) {
      INFO(c.losses << " " << extra);
      const Recipe recipe = parse_recipe(test::tiny_kd_recipe(c.losses, extra), "syncs.toml");
      BenchStageOptions o;
      BenchStage bench(recipe, o);
      bench.step();  // the first step may create state lazily
      CHECK(std::isfinite(bench.read_loss()));
      CHECK(host_reads_of([&] {
              for (int i = 0; i < 3; ++i) bench.step();
            }) == 3 * c.reads_per_step);
      double loss = 0;
      CHECK(host_reads_of([&] { loss = bench.read_loss(); }) == 1);
      CHECK(std::isfinite(loss));
    }
  }
}

TEST_CASE("step syncs: a run reading every 4 steps stops at a non-finite loss naming its step") {
  // An absurd learning rate blows the weights up after the first update; the read after step 4
  // finds the first non-finite loss at step 1 and says that its update and the later ones were
  // skipped.
  const Recipe recipe =
      parse_recipe(test::tiny_kd_recipe(R"({ name = "ce" })"), "syncs.toml",
                   {"stages.teacher.optimizer.lr=1e30", "stages.teacher.optimizer.momentum=0.0"});
  const fs::path dir = fs::temp_directory_path() / "retort_step_syncs_nan";
  fs::remove_all(dir);
  RunOptions o;
  o.quiet = true;
  o.out_dir = dir.string();
  o.read_every_steps = 4;
  o.max_batches_per_epoch = 6;
  try {
    run_recipe(recipe, o);
    FAIL("the run should have stopped");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("step 1 (stage 'teacher', epoch 0, batch 1)") != std::string::npos);
    CHECK(msg.find("found at step 3") != std::string::npos);
    CHECK(msg.find("loss 'ce'") != std::string::npos);
  }
  fs::remove_all(dir);
}
