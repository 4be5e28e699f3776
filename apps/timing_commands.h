// The timing commands of the `retort` command line: `retort bench` (a stage's training step,
// images/s, train/step_bench.h) and `retort profile` (where that step's time goes, per op and
// phase, with a Chrome/Perfetto trace, train/profile_run.h).
#pragma once
#include <string>
#include <vector>
#include <CLI/CLI.hpp>
#include "train/profile_run.h"
#include "train/step_bench.h"

namespace retort::cli {

struct BenchArgs {
  std::string recipe, json;
  std::vector<std::string> sets;
  StepBenchOptions options;
};
CLI::App* add_bench_command(CLI::App& app, BenchArgs& args);
int cmd_bench(const BenchArgs& args);

struct ProfileArgs {
  std::string recipe, trace = "default", json;
  std::vector<std::string> sets;
  ProfileOptions options;
  int64_t top = 25;
};
CLI::App* add_profile_command(CLI::App& app, ProfileArgs& args);
int cmd_profile(const ProfileArgs& args);

}  // namespace retort::cli
