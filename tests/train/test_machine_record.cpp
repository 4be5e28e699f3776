// What computes a run: describe_machine(), its place in summary.json, the warning when a resumed
// run was computed elsewhere, and the stage-cache key's dependence on the CPU numerics
// (thread count, OpenBLAS kernel set).
#include <doctest/doctest.h>
#include <omp.h>
#include <nlohmann/json.hpp>
#include "engine/machine.h"
#include "helpers.h"
#include "kernels/cpu/blas.h"
#include "kernels/matmul.h"
#include "recipe_test_util.h"
#include "train/run_dir.h"
#include "train/stage_cache.h"

using namespace retort;

namespace {
const char* kTiny = "[run]\nname = \"tiny\"\n[models.m]\narch = \"resnet8\"\n[[stages]]\nname = \"fit\"\ntrain = \"m\"\nepochs = 1\n";

// Runs `body` with OpenMP's default team size set to `threads`, then puts it back.
template <typename F>
auto with_threads(int threads, F body) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  auto out = body();
  omp_set_num_threads(before);
  return out;
}
}  // namespace

TEST_CASE("machine: the CPU description names the processor, the threads and OpenBLAS's kernel set") {
  const MachineDescription m = describe_machine(Device::cpu());
  CHECK(m.device == "cpu");
  CHECK_FALSE(m.processor.empty());
  CHECK(m.threads == omp_get_max_threads());
  CHECK(m.library == cpu::blas_config());
  CHECK(m.library.starts_with("OpenBLAS "));
  CHECK(m.line() == "cpu: " + m.processor + ", " + std::to_string(m.threads) + " threads, " + m.library);
  // The key holds what decides the bits, not the processor's name.
  MachineDescription other_cpu = m;
  other_cpu.processor = "another CPU with the same kernels";
  CHECK(other_cpu.numerics_key() == m.numerics_key());
  MachineDescription other_kernels = m;
  other_kernels.library = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64";
  if (m.library != other_kernels.library) CHECK(other_kernels.numerics_key() != m.numerics_key());
  MachineDescription other_threads = m;
  other_threads.threads = m.threads + 1;
  CHECK(other_threads.numerics_key() != m.numerics_key());
}

TEST_CASE("machine: a GPU's description names it and its compute capability") {
  RETORT_REQUIRE_GPU();
  const MachineDescription m = describe_machine(Device::cuda(0));
  CHECK(m.device == "cuda:0");
  CHECK(m.processor.find(", sm_") != std::string::npos);
  CHECK(m.processor.find("CUDA runtime ") != std::string::npos);
  CHECK(m.numerics_key() != describe_machine(Device::cpu()).numerics_key());
}

TEST_CASE("machine: summary.json records it, and a resume on another machine is told so") {
  test::TempDir tmp;
  const Recipe recipe = parse_recipe(kTiny, "tiny.toml");
  const std::string dir = (tmp.path / "run").string();
  const MachineDescription here = describe_machine(Device::cpu());
  {
    RunDir run = RunDir::create(recipe, dir);
    CHECK(run.set_machine(here).empty());  // a new run has no earlier machine
    const auto summary = nlohmann::json::parse(test::read_text(run.file("summary.json")));
    REQUIRE(summary.contains("machine"));
    CHECK(summary["machine"]["device"] == "cpu");
    CHECK(summary["machine"]["processor"] == here.processor);
    CHECK(summary["machine"]["threads"] == here.threads);
    CHECK(summary["machine"]["library"] == here.library);
    CHECK(summary["machine"]["line"] == here.line());
  }
  {
    RunDir same = RunDir::open(recipe, dir);
    CHECK(same.set_machine(here).empty());  // resumed where it ran
  }
  MachineDescription elsewhere = here;
  elsewhere.library = here.library + " (other kernels)";
  RunDir resumed = RunDir::open(recipe, dir);
  CHECK(resumed.set_machine(elsewhere) == here.line());  // the earlier machine, to warn about
  const auto summary = nlohmann::json::parse(test::read_text(resumed.file("summary.json")));
  CHECK(summary["machine"]["library"] == elsewhere.library);
}

TEST_CASE("stage cache key: differs between thread counts, so no entry crosses them") {
  const Recipe recipe = parse_recipe(kTiny, "tiny.toml");
  const std::map<std::string, std::string> models{{"m", "m0"}};
  auto key = [&] { return StageCache::stage_key(recipe, recipe.stages.at(0), models, Device::cpu(), 0); };
  const std::string one = with_threads(1, key), two = with_threads(2, key);
  CHECK(one != two);
  CHECK(with_threads(1, key) == one);  // and stays the same for the same count
}

TEST_CASE("machine: the numerics digest is a repeatable hash of this machine's outputs") {
  const std::string digest = numerics_digest(Device::cpu());
  CHECK(digest.size() == 32);
  CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(numerics_digest(Device::cpu()) == digest);
}
