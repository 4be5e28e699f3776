// The `retort` command line: run a recipe, time or profile a stage's training step
// (apps/timing_commands.h), evaluate, import or export a model (apps/model_commands.h), report
// on runs, list what is built in, describe what computes here.
// Every error exits non-zero with a one-line reason.
#include <CLI/CLI.hpp>
#include "apps/model_commands.h"
#include "apps/report_command.h"
#include "apps/timing_commands.h"
#include <cstdio>
#include <filesystem>
#include "engine/data/loader.h"
#include "engine/data/registry.h"
#include "engine/device.h"
#include "engine/dist/communicator.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/machine.h"
#include "engine/version.h"
#include "models/import_weights.h"
#include "models/registry.h"
#include "train/interrupt.h"
#include "train/recipe.h"
#include "train/recipe_fields.h"
#include "train/catalog.h"
#include "train/run_dir.h"
#include "train/runner.h"
#include "train/trainer.h"
#include "transfer/loss_term.h"

using namespace retort;

namespace {

// A word as the shell reads it back: bare when it is plain, else in single quotes.
std::string shell_quoted(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "_-+=./:,@%") == std::string::npos)
    return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command that resumes an interrupted run: this one, with --out naming the run directory
// (which the first command may have left to the default) and --resume.
std::string resume_command(int argc, char** argv, const std::string& run_dir) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--resume" || arg.rfind("--out=", 0) == 0) continue;
    if (arg == "--out") {
      ++i;
      continue;
    }
    cmd += (i ? " " : "") + shell_quoted(arg);
  }
  if (!run_dir.empty()) cmd += " --out " + shell_quoted(run_dir);
  return cmd + " --resume";
}

// --precision P: every stage's precision set to P, as `--set stages.<i>.precision="P"` would.
std::vector<std::string> with_precision(const std::string& path, std::vector<std::string> sets,
                                        const std::string& precision) {
  if (precision.empty()) return sets;
  const size_t stages = load_recipe(path, sets).stages.size();
  for (size_t i = 0; i < stages; ++i) sets.push_back(fmt::format("stages.{}.precision=\"{}\"", i, precision));
  return sets;
}

int cmd_run(const std::string& recipe_path, const std::vector<std::string>& sets, const std::string& precision,
            RunOptions opts) {
  const std::string path = resolve_recipe(recipe_path).string();
  Recipe recipe = load_recipe(path, with_precision(path, sets, precision));
  check_recipe_files(recipe);
  RunResult r = run_recipe(recipe, opts);
  if (retort::dist::world().is_root()) std::printf("%s\n", (std::filesystem::path(r.run_dir) / "summary.json").c_str());
  return r.completed ? 0 : 3;
}

int cmd_list(const std::string& what) {
  if (what == "models") {
    std::printf("%-22s %-16s %12s  taps (for 1x28x28 input, 10 classes)\n", "model", "family", "parameters");
    for (const auto& m : models::list_models()) {
      std::string taps;
      for (const auto& t : m.taps) taps += (taps.empty() ? "" : " ") + t.name + shape_str(t.shape);
      std::printf("%-22s %-16s %12lld  %s\n", m.name.c_str(), m.family.c_str(), (long long)m.num_parameters, taps.c_str());
    }
  } else if (what == "datasets") {
    for (const auto& d : data::dataset_registry())
      std::printf("%-16s %s%s\n", d.name.c_str(), d.description.c_str(),
                  d.default_dir.empty() ? "" : (" (default: " + d.default_dir + ")").c_str());
  } else if (what == "losses") {
    std::printf("%-14s %-8s %s\n", "loss", "weight", "what it computes (`retort list keys`, docs/methods/<loss>.md)");
    for (const auto& l : transfer::list_losses())
      std::printf("%-14s %-8s %s\n", l.name.c_str(), fmt::format("{:g}", l.default_weight).c_str(), l.help.c_str());
    std::printf("\nTask-oriented transfer (Vemulapalli et al. 2024) is a recipe of three stages over ce and kd "
                "(probe the teacher, distil on unlabelled data, fine-tune): recipes/fmnist_task_oriented.toml.\n");
  } else if (what == "recipes") {
    std::printf("%s", format_recipe_list(list_recipes()).c_str());
  } else if (what == "keys") {
    std::printf("%s", recipe_key_reference().c_str());
  } else {
    fail("list: unknown kind '{}': use models, datasets, losses, recipes or keys", what);
  }
  return 0;
}

// What computes on `device_name`, and the digest of its numerics (engine/machine.h).
int cmd_machine(const std::string& device_name) {
  const Device device = resolve_device(device_name);
  const MachineDescription m = describe_machine(device);
  std::printf("device:    %s\nprocessor: %s\n", m.device.c_str(), m.processor.c_str());
  if (device.is_cpu()) std::printf("threads:   %d\nlibrary:   %s\n", m.threads, m.library.c_str());
  std::printf("numerics:  %s\n", numerics_digest(device).c_str());
  return 0;
}

}  // namespace

// An error ends the command; on several data-parallel ranks it ends the whole job (MPI_Abort),
// naming the rank, so no other rank waits forever for this one.
int failed(const std::string& what) {
  auto& world = retort::dist::world();
  if (world.size() == 1) {
    std::fprintf(stderr, "retort: error: %s\n", what.c_str());
    return 2;
  }
  world.abort(fmt::format("error: {}", what));
  return 2;  // not reached: abort ends the job
}

int main(int argc, char** argv) {
  CLI::App app{"retort: knowledge transfer from large models into small, fast ones"};
  app.set_version_flag("--version", std::string(retort::version()));
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "Run every stage of a recipe (TOML)");
  std::string recipe_path;
  std::vector<std::string> sets;
  RunOptions ro;
  run->add_option("recipe", recipe_path, "Recipe file, e.g. recipes/fmnist_kd.toml")->required();
  run->add_option("--set", sets, "Override a recipe value: key=value (e.g. stages.0.epochs=3); repeatable");
  std::string precision;
  run->add_option("--precision", precision, "Every stage's precision: f32 | tf32 | bf16 (docs/gpu_step.md)")
      ->check(CLI::IsMember({"f32", "tf32", "bf16"}));
  run->add_option("--device", ro.device, "auto | cpu | cuda | cuda:N (default: the recipe's run.device)");
  run->add_option("--out", ro.out_dir, "Run directory (default: <run.out_dir>/<run.name>-<UTC time>)");
  run->add_flag("--resume", ro.resume, "Continue the run in --out from its last checkpoints");
  run->add_option("--checkpoint-every", ro.checkpoint_every_steps, "Also checkpoint every N steps (0: per epoch)")
      ->check(CLI::NonNegativeNumber);
  run->add_flag("--allow-recipe-change", ro.allow_recipe_change,
                "With --resume: continue under a recipe that differs from the run's (summary.json records the change)");
  run->add_flag("--quiet", ro.quiet, "No progress bar");
  run->add_option("--max-batches", ro.max_batches_per_epoch,
                  "A quick look: at most N batches per epoch and per evaluation (0: all)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--log-steps", ro.log_every_steps,
                  "Write every N-th step's loss terms, lr, gradient norm and statistics to steps.jsonl (0: off; "
                  "default: the recipe's run.log_every_steps)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--read-every", ro.read_every_steps,
                  "Read the steps' loss and accuracy on the host every N steps (0: every step on the CPU, every 25 "
                  "on CUDA); a non-finite loss is still caught at its step, whose update is skipped on the device")
      ->check(CLI::NonNegativeNumber);
  run->add_flag("--verify-replicas", ro.verify_replicas,
                "Data parallelism: after every step, check that every rank holds bit-identical weights");
  run->add_option("--stage-cache", ro.stage_cache_dir,
                  "Reuse stages an earlier run trained with the same settings and inputs (e.g. runs/stage_cache)");
  run->add_option("--feature-cache", ro.feature_cache_dir,
                  "Directory of teacher-feature files for teacher_cache = \"file\" (default <run.out_dir>/feature_cache)");

  cli::BenchArgs ba;
  auto* bench = cli::add_bench_command(app, ba);
  cli::ProfileArgs pa;
  auto* profile = cli::add_profile_command(app, pa);
  cli::ReportArgs rpa;
  auto* report = cli::add_report_command(app, rpa);

  cli::EvalArgs eva;
  auto* eval = cli::add_eval_command(app, eva);
  cli::ImportArgs ia;
  auto* imp = cli::add_import_command(app, ia);
  cli::ExportArgs exa;
  auto* exp = cli::add_export_command(app, exa);

  auto* list = app.add_subcommand("list", "List built-in models, datasets, losses, recipes, or every recipe key");
  std::string what;
  list->add_option("what", what, "models | datasets | losses | recipes | keys")->required();

  auto* machine = app.add_subcommand(
      "machine", "Describe what computes here (processor, threads, OpenBLAS kernels or GPU) and digest its numerics: "
                 "on two machines with equal digests, retort's convolutions and matrix products agree to the bit");
  std::string machine_device = "cpu";
  machine->add_option("--device", machine_device, "cpu | cuda | cuda:N | auto");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; every usage error is 2, as for any other error
  }
  try {
    if (*run) {
      retort::dist::init_world();  // MPI when launched by mpirun (docs/distributed.md)
      const int rc = cmd_run(recipe_path, sets, precision, ro);
      retort::dist::finalize_world();
      return rc;
    }
    if (*bench) return cli::cmd_bench(ba);
    if (*profile) return cli::cmd_profile(pa);
    if (*report) return cli::cmd_report(rpa);
    if (*eval) return cli::cmd_eval(eva);
    if (*imp) return cli::cmd_import(ia);
    if (*exp) return cli::cmd_export(exa);
    if (*list) return cmd_list(what);
    if (*machine) return cmd_machine(machine_device);
  } catch (const Interrupted& e) {
    if (retort::dist::world().is_root())
      std::fprintf(stderr, "retort: interrupted: %s\nretort: resume with: %s\n", e.what(),
                   resume_command(argc, argv, e.run_dir).c_str());
    retort::dist::finalize_world();  // every rank stopped at the same step
    return 128 + e.signal;
  } catch (const std::bad_alloc&) {
    return failed("out of memory (an allocation failed; a smaller batch_size or image_size needs less)");
  } catch (const std::exception& e) {
    return failed(e.what());
  }
  return 0;
}
