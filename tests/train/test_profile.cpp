// The per-op profiler (engine/profiler.h), its summary and trace (engine/profile_report.h), and
// the stage runs of `retort bench` and `retort profile` (train/bench_stage.h, profile_run.h):
// nothing is recorded unless a profile runs; ranges nest, self time is total minus children;
// a convolution's FLOPs follow its shape; phases add up to the step; the trace is valid JSON.
#include <doctest/doctest.h>
#include <algorithm>
#include <cmath>
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/profile_report.h"
#include "engine/profiler.h"
#include "helpers.h"
#include "train/profile_run.h"
#include "train/recipe.h"
#include "train/step_bench.h"

using namespace retort;
using profiler::Event;
using profiler::Kind;

namespace {

const Event* find_event(const std::vector<Event>& events, const std::string& name, Kind kind) {
  for (const Event& e : events)
    if (e.name == name && e.kind == kind) return &e;
  return nullptr;
}

// One "step": a convolution, a ReLU and a sum forward, then backward, under two phases.
std::vector<Event> profile_conv_step() {
  Tensor x = test::random_tensor({2, 3, 8, 8}, 1, -1, 1, DType::f32);
  Tensor w = test::random_tensor({4, 3, 3, 3}, 2, -1, 1, DType::f32);
  w.requires_grad_(true);
  profiler::start();
  {
    profiler::Range step("step", Kind::step);
    Tensor loss;
    {
      profiler::Range phase("forward", Kind::phase);
      Conv2dOptions same;
      same.padding = {1, 1};
      loss = sum(relu(conv2d(x, w, Tensor(), same)));
    }
    profiler::Range phase("backward", Kind::phase);
    loss.backward();
  }
  return profiler::stop();
}

const char* kRecipe = R"(
[run]
name = "prof"
device = "cpu"
[data]
dataset = "fashion-mnist"
[models.teacher]
arch = "resnet8"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 8
optimizer = { type = "sgd", lr = 0.1 }
[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 8
optimizer = { type = "sgd", lr = 0.1, momentum = 0.9 }
losses = [ { name = "ce", weight = 0.5 }, { name = "kd", teacher = "teacher", weight = 0.5, T = 4.0 } ]
)";

}  // namespace

TEST_CASE("profiler: nothing is recorded while no profile runs") {
  CHECK_FALSE(profiler::active());
  profiler::Range range("idle", Kind::phase);
  CHECK_FALSE(range.on());
  Tensor x = Tensor::ones({4});
  CHECK(sum(x).item() == 4.0);
  CHECK_THROWS_AS(profiler::stop(), Error);
}

TEST_CASE("profiler: ops, backward nodes and phases nest; FLOPs, shapes and allocations are recorded") {
  const std::vector<Event> events = profile_conv_step();
  CHECK_FALSE(profiler::active());
  const Event* conv = find_event(events, "conv2d", Kind::op);
  const Event* conv_back = find_event(events, "conv2d", Kind::backward);
  const Event* grad_weight = find_event(events, "conv2d grad weight", Kind::op);
  const Event* relu_op = find_event(events, "relu", Kind::op);
  REQUIRE(conv);
  REQUIRE(conv_back);
  REQUIRE(grad_weight);
  REQUIRE(relu_op);
  CHECK(conv->shapes == "[2, 3, 8, 8] [4, 3, 3, 3]");
  CHECK(conv->flops == 2.0 * 2 * 4 * 8 * 8 * 3 * 3 * 3);  // 2 N Cout Ho Wo Cin Kh Kw
  CHECK(grad_weight->flops == conv->flops);
  CHECK(grad_weight->in_backward);
  CHECK_FALSE(conv->in_backward);
  CHECK(relu_op->bytes == 2.0 * 2 * 4 * 8 * 8 * 4);  // f32 in and out
  CHECK(conv->allocations >= 1);
  // Nesting: every event lies inside its parent, one level deeper.
  for (const Event& e : events) {
    if (e.parent < 0) {
      CHECK(e.kind == Kind::step);
      continue;
    }
    const Event& p = events[size_t(e.parent)];
    CHECK(e.depth == p.depth + 1);
    CHECK(e.start_ns >= p.start_ns);
    CHECK(e.end_ns <= p.end_ns);
  }
  CHECK(events[size_t(grad_weight->parent)].name == "conv2d");
  CHECK(events[size_t(grad_weight->parent)].kind == Kind::backward);
}

TEST_CASE("profiler: the summary adds up and the trace is Chrome's event format") {
  const std::vector<Event> events = profile_conv_step();
  const profiler::Summary s = profiler::summarise(events);
  CHECK(s.steps == 1);
  REQUIRE(s.phases.size() == 3);
  CHECK(s.phases[0].name == "forward");
  CHECK(s.phases[1].name == "backward");
  CHECK(s.phases[2].name == "other");
  double phases = 0;
  for (const auto& p : s.phases) phases += p.ms;
  CHECK(phases == doctest::Approx(s.step_ms).epsilon(1e-9));
  auto conv = std::find_if(s.ops.begin(), s.ops.end(), [](const profiler::OpRow& r) { return r.name == "conv2d"; });
  REQUIRE(conv != s.ops.end());
  CHECK(conv->calls == 2);  // the forward op and its backward node
  CHECK(conv->self_ms <= conv->total_ms + 1e-12);
  CHECK(conv->total_ms == doctest::Approx(conv->forward_ms + conv->backward_ms));
  CHECK(conv->gflops_per_s > 0);
  for (size_t i = 1; i < s.ops.size(); ++i) CHECK(s.ops[i - 1].self_ms >= s.ops[i].self_ms);
  double self = 0;
  for (const auto& r : s.ops) self += r.self_ms;
  CHECK(self <= s.step_ms + 1e-9);  // self times never count anything twice

  const nlohmann::json trace = profiler::chrome_trace(events, "test");
  REQUIRE(trace["traceEvents"].size() == events.size() + 1);
  const auto& first = trace["traceEvents"][1];
  CHECK(first["ph"] == "X");
  CHECK(first["name"] == "step");
  CHECK(first["dur"].get<double>() > 0);
  const std::string table = profiler::format_summary(s);
  CHECK(table.find("conv2d") != std::string::npos);
  CHECK(table.find("forward") != std::string::npos);
}

TEST_CASE("profile: a KD stage's steps, by phase and op, on synthetic batches") {
  const Recipe recipe = parse_recipe(kRecipe, "prof.toml");
  ProfileOptions options;
  options.warmup = 2;
  options.steps = 2;
  const ProfileResult r = profile_stage(recipe, options);
  CHECK(r.summary.steps == 2);
  CHECK(r.batch == 8);
  CHECK(r.data == "synthetic");
  std::vector<std::string> phases;
  for (const auto& p : r.summary.phases) phases.push_back(p.name);
  CHECK(phases == std::vector<std::string>{"teacher forward", "student forward", "losses", "backward", "optimizer",
                                           "other"});
  auto has_op = [&](const std::string& name) {
    return std::any_of(r.summary.ops.begin(), r.summary.ops.end(), [&](const auto& o) { return o.name == name; });
  };
  CHECK(has_op("conv2d"));
  CHECK(has_op("batch_norm2d"));
  CHECK(has_op("kl_div"));
  CHECK(has_op("gradient norm"));     // every step's, clipping or not
  CHECK(has_op("optimizer update"));  // the multi-tensor launches
  for (const auto& o : r.summary.ops)
    if (o.name == "gradient norm" || o.name == "optimizer update") CHECK(o.bytes > 0);
  CHECK(r.peak_mem_mb > 0);
  CHECK(r.to_json()["summary"]["steps"] == 2);
  CHECK_FALSE(profiler::active());
}

TEST_CASE("bench: a stage's step on synthetic batches, and the errors before any work") {
  const Recipe recipe = parse_recipe(kRecipe, "prof.toml");
  StepBenchOptions o;
  o.warmup = 1;
  o.steps = 2;
  o.rounds = 1;
  const StepBenchResult r = bench_stage_steps(recipe, o);
  CHECK(r.batch == 8);
  CHECK(r.images_per_s > 0);
  CHECK(std::isfinite(r.final_loss));
  CHECK(r.to_json()["data"] == "synthetic");
  o.stage.stage = "nope";
  CHECK_THROWS_WITH_AS(bench_stage_steps(recipe, o), doctest::Contains("has no stage 'nope'; its stages: teacher, kd"), Error);
}
