// Run directory: creation, resolved.toml, metrics.jsonl appends, atomic summary.json.
#include "train/run_dir.h"
#include "engine/dist/communicator.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <unistd.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include "engine/error.h"
#include "train/recipe_diff.h"

namespace retort {

namespace fs = std::filesystem;

std::string utc_stamp(bool iso) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y%m%d-%H%M%S", &tm);
  return buf;
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + fmt::format(".tmp-{}", ::getpid());
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("cannot write '{}': {}", tmp.string(), std::strerror(errno));
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fflush(f) == 0 && ok;
    ok = ::fsync(::fileno(f)) == 0 && ok;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) {
      std::remove(tmp.c_str());
      fail("cannot write '{}': {} (disk full?)", tmp.string(), std::strerror(errno));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot move '{}' to '{}': {}", tmp.string(), path.string(), ec.message());
  }
}

RunDir::RunDir(RunDir&& other) noexcept
    : path_(std::move(other.path_)),
      recipe_name_(std::move(other.recipe_name_)),
      recipe_source_(std::move(other.recipe_source_)),
      started_utc_(std::move(other.started_utc_)),
      status_(std::move(other.status_)),
      results_(std::move(other.results_)),
      machine_(std::move(other.machine_)),
      previous_machine_(std::move(other.previous_machine_)),
      recipe_changes_(std::move(other.recipe_changes_)),
      change_effect_pending_(other.change_effect_pending_),
      writes_(other.writes_),
      lock_(std::move(other.lock_)) {}

RunDir::~RunDir() = default;

namespace {

// Temporary files of atomic writes ("<file>.tmp-<pid>", "<file>.tmp.<pid>") that a killed
// process left in the run directory; with the lock held, none belongs to a live writer.
int remove_stale_temp_files(const fs::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    size_t at = name.rfind(".tmp-");
    if (at == std::string::npos) at = name.rfind(".tmp.");
    if (at == std::string::npos || at == 0 || !it->is_regular_file()) continue;
    const std::string pid = name.substr(at + 5);
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

// A line cut short when a run was killed while appending: the bytes after the last newline.
size_t cut_partial_last_line(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec || size == 0) return 0;
  std::string text;
  {
    std::ifstream in(file, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (text.back() == '\n') return 0;
  const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  write_file_atomic(file, text.substr(0, keep));
  return text.size() - keep;
}

}  // namespace

RunDir RunDir::create(const Recipe& recipe, const std::string& explicit_dir) {
  RunDir run;
  std::error_code ec;
  if (!explicit_dir.empty()) {
    run.path_ = explicit_dir;
    if (fs::exists(run.path_) && !(fs::is_directory(run.path_) && fs::is_empty(run.path_)))
      fail("run directory '{}' already exists and is not empty: choose another --out or remove it", explicit_dir);
    fs::create_directories(run.path_, ec);
  } else {
    const fs::path base = fs::path(recipe.run.out_dir) / fmt::format("{}-{}", recipe.run.name, utc_stamp());
    fs::create_directories(base.parent_path().empty() ? fs::path(".") : base.parent_path(), ec);
    if (ec) fail("cannot create output directory '{}': {}", recipe.run.out_dir, ec.message());
    // create_directory reports whether it made the directory, so two runs never share one.
    for (int n = 1; n < 1000; ++n) {
      run.path_ = n == 1 ? base : fs::path(base.string() + fmt::format("-{}", n));
      if (fs::create_directory(run.path_, ec)) break;
      if (ec) break;
    }
  }
  if (ec) fail("cannot create run directory '{}': {}", run.path_.string(), ec.message());
  run.lock_ = std::make_unique<RunLock>(run.path_);
  run.recipe_name_ = recipe.run.name;
  run.recipe_source_ = recipe.source;
  run.started_utc_ = utc_stamp(true);
  write_file_atomic(run.file("resolved.toml"), to_toml(recipe));
  {
    std::lock_guard lock(run.mutex_);
    run.write_summary();
  }
  return run;
}

RunDir RunDir::open(const Recipe& recipe, const std::string& dir, bool allow_recipe_change,
                    const std::function<void(const std::string&)>& say) {
  RETORT_CHECK(!dir.empty(), "--resume needs the run directory to continue (--out DIR)");
  RETORT_CHECK(fs::is_directory(dir), "cannot resume: run directory '{}' does not exist", dir);
  RunDir run;
  run.path_ = dir;
  run.lock_ = std::make_unique<RunLock>(run.path_);
  run.recipe_name_ = recipe.run.name;
  run.recipe_source_ = recipe.source;
  run.started_utc_ = utc_stamp(true);
  run.read_summary();
  run.check_recipe(recipe, allow_recipe_change);
  if (const int n = remove_stale_temp_files(run.path_); n > 0 && say)
    say(fmt::format("removed {} temporary file(s) that a killed write left in {}", n, dir));
  for (const char* name : {"metrics.jsonl", "steps.jsonl"})
    if (const size_t cut = cut_partial_last_line(run.file(name)); cut > 0 && say)
      say(fmt::format("cut a partial last line of {} bytes off {} (the run was killed while writing it)", cut,
                      run.file(name).string()));
  write_file_atomic(run.file("resolved.toml"), to_toml(recipe));
  {
    std::lock_guard lock(run.mutex_);
    run.write_summary();
  }
  return run;
}

RunDir RunDir::replica(const std::string& dir, bool resumed) {
  RunDir run;
  run.path_ = dir;
  run.writes_ = false;
  if (resumed) run.read_summary();
  return run;
}

void RunDir::read_summary() {
  const fs::path summary = file("summary.json");
  if (!fs::exists(summary)) return;
  std::ifstream in(summary);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    fail("cannot resume: '{}' is not valid JSON: {}", summary.string(), e.what());
  }
  started_utc_ = j.value("started_utc", started_utc_);
  if (j.contains("machine") && j["machine"].is_object()) {
    const auto& m = j["machine"];
    previous_machine_ = {m.value("device", ""), m.value("processor", ""), m.value("threads", 0), m.value("library", "")};
  }
  if (j.contains("recipe_changes") && j["recipe_changes"].is_array()) recipe_changes_ = j["recipe_changes"];
  for (const auto& r : j.value("results", nlohmann::json::array())) {
    ModelResult m;
    m.stage = r.value("stage", "");
    m.model = r.value("model", "");
    m.test_top1 = r["test_top1"].is_number() ? r["test_top1"].get<double>() : NAN;
    m.test_top5 = r["test_top5"].is_number() ? r["test_top5"].get<double>() : NAN;
    m.wall_s = r["wall_s"].is_number() ? r["wall_s"].get<double>() : NAN;
    m.parameters = r.value("parameters", int64_t(0));
    if (r.contains("selection") && r["selection"].is_object()) {  // a resumed run keeps its finished stages' rows
      const auto& s = r["selection"];
      const auto num = [&](const char* k) { return s.contains(k) && s[k].is_number() ? s[k].get<double>() : NAN; };
      m.kept = s.value("kept", "");
      m.best_epoch = s.value("best_epoch", int64_t(0));
      m.last_epoch = s.value("last_epoch", int64_t(0));
      m.best_val_top1 = num("best_val_top1");
      m.last_val_top1 = num("last_val_top1");
      m.best_test_top1 = num("best_test_top1");
      m.last_test_top1 = num("last_test_top1");
    }
    results_.push_back(m);
  }
}

void RunDir::check_recipe(const Recipe& recipe, bool allow_change) {
  const fs::path resolved = file("resolved.toml");
  if (!fs::exists(resolved)) return;  // a directory from before resolved.toml: nothing to compare
  std::ifstream in(resolved, std::ios::binary);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  Recipe before;
  try {
    before = parse_recipe(text, resolved.string());
  } catch (const Error& e) {
    fail("cannot resume: the run's {} does not parse: {}", resolved.string(), e.what());
  }
  const std::vector<std::string> changes = recipe_differences(before, recipe);
  if (changes.empty()) return;
  RETORT_CHECK(allow_change,
               "cannot resume '{}' with a different recipe; what differs from its resolved.toml:\n  {}\nResume with "
               "the recipe the run started with (its resolved.toml), or pass --allow-recipe-change to continue "
               "under the new values (summary.json then records the change and where it took effect)",
               path_.string(), fmt::join(changes, "\n  "));
  recipe_changes_.push_back({{"resumed_utc", utc_stamp(true)}, {"changes", changes}, {"took_effect", nullptr}});
  change_effect_pending_ = true;
}

void RunDir::note_change_effect(const std::string& stage, int64_t step) {
  std::lock_guard lock(mutex_);
  if (!change_effect_pending_) return;
  change_effect_pending_ = false;
  recipe_changes_.back()["took_effect"] = {{"stage", stage}, {"step", step}};
  write_summary();
}

fs::path RunDir::checkpoint_path(const std::string& stage, const std::string& model) const {
  fs::path dir = path_ / "checkpoints";
  fs::create_directories(dir);
  return dir / fmt::format("{}-{}.safetensors", stage, model);
}

namespace {
// NaN and infinities are not JSON numbers: they become null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

void RunDir::append_line(const std::string& name, const nlohmann::json& row) {
  const std::string line = row.dump() + "\n";
  std::lock_guard lock(mutex_);
  if (!writes_) return;
  std::ofstream out(file(name), std::ios::app | std::ios::binary);
  out << line;
  out.flush();
  if (!out) fail("cannot append to '{}': {}", file(name).string(), std::strerror(errno));
}

void RunDir::append_metrics(const EvalRecord& r) { append_line("metrics.jsonl", to_json(r)); }

void RunDir::append_step(const nlohmann::json& row) { append_line("steps.jsonl", row); }

void RunDir::record_result(const ModelResult& result) {
  std::lock_guard lock(mutex_);
  auto same = [&](const ModelResult& r) { return r.stage == result.stage && r.model == result.model; };
  auto it = std::find_if(results_.begin(), results_.end(), same);
  if (it != results_.end()) *it = result;
  else results_.push_back(result);
  write_summary();
}

std::string RunDir::set_machine(const MachineDescription& machine) {
  std::lock_guard lock(mutex_);
  machine_ = machine;
  write_summary();
  const bool same = previous_machine_.device.empty() || previous_machine_.numerics_key() == machine.numerics_key();
  return same ? "" : previous_machine_.line();
}

void RunDir::set_status(const std::string& status) {
  std::lock_guard lock(mutex_);
  status_ = status;
  write_summary();
}

void RunDir::write_summary() {
  if (!writes_) return;
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : results_) {
    results.push_back({{"stage", r.stage},
                       {"model", r.model},
                       {"test_top1", number_or_null(r.test_top1)},
                       {"test_top5", number_or_null(r.test_top5)},
                       {"wall_s", number_or_null(r.wall_s)},
                       {"parameters", r.parameters}});
    if (!r.kept.empty())
      results.back()["selection"] = {{"kept", r.kept},
                                     {"best_epoch", r.best_epoch},
                                     {"best_val_top1", number_or_null(r.best_val_top1)},
                                     {"best_test_top1", number_or_null(r.best_test_top1)},
                                     {"last_epoch", r.last_epoch},
                                     {"last_val_top1", number_or_null(r.last_val_top1)},
                                     {"last_test_top1", number_or_null(r.last_test_top1)}};
  }
  nlohmann::json j = {{"recipe", recipe_name_}, {"source", recipe_source_}, {"run_dir", path_.string()},
                      {"started_utc", started_utc_}, {"updated_utc", utc_stamp(true)}, {"status", status_},
                      {"results", results}};
  if (!recipe_changes_.empty()) j["recipe_changes"] = recipe_changes_;
  j["ranks"] = dist::world().size();  // data-parallel processes (docs/distributed.md)
  if (!machine_.device.empty())
    j["machine"] = {{"device", machine_.device}, {"processor", machine_.processor}, {"threads", machine_.threads},
                    {"library", machine_.library}, {"line", machine_.line()}};
  write_file_atomic(file("summary.json"), j.dump(2) + "\n");
}

}  // namespace retort
