// `retort bench` and `retort profile` (see apps/timing_commands.h).
#include "apps/timing_commands.h"
#include <cstdio>
#include "engine/error.h"
#include "train/catalog.h"
#include "train/recipe.h"
#include "train/run_dir.h"

namespace retort::cli {
namespace {

// The options both commands share: which stage, on what, with which data.
void add_stage_options(CLI::App* cmd, std::string& recipe, std::vector<std::string>& sets, BenchStageOptions& o) {
  cmd->add_option("recipe", recipe, "Recipe file or built-in name, e.g. bench/cpu/step_kd_resnet8_wrn_16_2.toml")
      ->required();
  cmd->add_option("--stage", o.stage, "Stage to run (default: the last)");
  cmd->add_option("--batch-size", o.batch_size, "Batch size (default: the stage's)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", o.device, "auto | cpu | cuda | cuda:N (default: the recipe's run.device)");
  cmd->add_flag("--real-data", o.real_data,
                "The recipe's training data through the stage's loader (default: synthetic batches on the device)");
  cmd->add_option("--precision", o.precision, "f32 | tf32 | bf16 (default: the stage's precision)")
      ->check(CLI::IsMember({"f32", "tf32", "bf16"}));
  cmd->add_flag("--channels-last", o.channels_last,
                "The batch in channels-last (NHWC) memory, as the stage key memory_format = \"channels_last\"");
  cmd->add_option("--set", sets, "Override a recipe value: key=value; repeatable");
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchArgs& a) {
  auto* cmd = app.add_subcommand("bench", "Time one stage's training step (images/s)");
  add_stage_options(cmd, a.recipe, a.sets, a.options.stage);
  cmd->add_flag("--cuda-graph", a.options.stage.cuda_graph,
                "Capture the step after its warm-up as a CUDA graph and replay it (CUDA; stages without dropout or CRD)");
  cmd->add_option("--warmup", a.options.warmup, "Untimed steps first (default 5)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", a.options.steps, "Steps per timed round (default 20)")->check(CLI::PositiveNumber);
  cmd->add_option("--rounds", a.options.rounds, "Timed rounds; the median counts (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", a.json, "Also write the result as one JSON object to this file");
  return cmd;
}

// Prints one line, and the JSON record to --json (atomically) when asked.
int cmd_bench(const BenchArgs& a) {
  Recipe recipe = load_recipe(resolve_recipe(a.recipe).string(), a.sets);
  StepBenchResult r = bench_stage_steps(recipe, a.options);
  std::printf("%s / %s on %s: batch %lld, %s data, %.2f ms/step, %.1f images/s (median of %lld rounds of %lld steps; "
              "warm-up %lld steps %.2f s; loss %.4f)\n",
              r.recipe.c_str(), r.stage.c_str(), r.device.c_str(), (long long)r.batch, r.data.c_str(), r.ms_per_step,
              r.images_per_s, (long long)r.rounds, (long long)r.steps, (long long)r.warmup, r.warmup_s, r.final_loss);
  if (!a.json.empty()) write_file_atomic(a.json, r.to_json().dump() + "\n");
  return 0;
}

CLI::App* add_profile_command(CLI::App& app, ProfileArgs& a) {
  auto* cmd = app.add_subcommand("profile",
                                 "Profile one stage's training step: time per op and phase, allocations, a trace");
  add_stage_options(cmd, a.recipe, a.sets, a.options.stage);
  cmd->add_option("--warmup", a.options.warmup, "Unprofiled steps first (default 3)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", a.options.steps, "Profiled steps (default 10)")->check(CLI::PositiveNumber);
  cmd->add_option("--trace", a.trace,
                  "Write a Chrome/Perfetto trace here (default: profile-<recipe>-<stage>.json; \"\" for none)");
  cmd->add_option("--top", a.top, "Ops in the table (default 25)")->check(CLI::PositiveNumber);
  cmd->add_option("--json", a.json, "Also write the per-op and per-phase summary as JSON");
  return cmd;
}

int cmd_profile(const ProfileArgs& a) {
  Recipe recipe = load_recipe(resolve_recipe(a.recipe).string(), a.sets);
  ProfileResult r = profile_stage(recipe, a.options);
  std::printf("%s\n", r.header().c_str());
  std::printf("%s", profiler::format_summary(r.summary, size_t(a.top)).c_str());
  std::printf("\npeak memory %.1f MB; unprofiled step %.2f ms, profiled %.2f ms\n", r.peak_mem_mb,
              r.unprofiled_ms_per_step, r.summary.step_ms);
  const std::string trace = a.trace == "default" ? fmt::format("profile-{}-{}.json", r.recipe, r.stage) : a.trace;
  if (!trace.empty()) {
    write_file_atomic(trace, profiler::chrome_trace(r.events, r.header()).dump() + "\n");
    std::printf("trace: %s (%zu events; open it in ui.perfetto.dev or chrome://tracing)\n", trace.c_str(),
                r.events.size());
  }
  if (!a.json.empty()) write_file_atomic(a.json, r.to_json().dump(1) + "\n");
  return 0;
}

}  // namespace retort::cli
