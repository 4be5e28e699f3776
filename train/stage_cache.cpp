// Stage cache: keys (hashes of settings and model-state keys) and atomic entry directories.
#include "train/stage_cache.h"
#include "engine/dist/communicator.h"
#include <unistd.h>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <fmt/format.h>
#include "engine/nn/module_rng.h"
#include "engine/content_hash.h"
#include "engine/error.h"
#include "engine/machine.h"
#include "engine/version.h"
#include "engine/io/safetensors.h"
#include "train/run_dir.h"

namespace retort {
namespace fs = std::filesystem;
namespace {

constexpr const char* kVersion = "retort-stage-cache-v3";

std::string hash_hex(const std::string& text) {
  ContentHash h;
  h.text(text);
  return h.hex();
}

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RETORT_CHECK(in, "stage cache: cannot read '{}'", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return hash_hex(bytes.str());
}

// The running executable's bytes: the key covers the code, so a rebuilt retort trains again
// instead of reusing what older code trained. Hashed once per process.
const std::string& code_digest() {
  static const std::string digest = [] {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    std::ifstream in(ec ? fs::path() : exe, std::ios::binary);
    if (!in) return std::string("unknown-executable ") + version();  // no /proc: the version only
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return hash_hex(bytes.str());
  }();
  return digest;
}

// What a data directory holds, by listing: every regular file below it (sorted relative path,
// size, modification time), so replacing, adding or removing an image changes the key. No file
// is read: one stat per file (about a second for an ImageNet-sized folder).
std::string directory_listing_digest(const std::string& dir) {
  std::vector<std::string> rows;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      const auto mtime = fs::last_write_time(it->path(), ec).time_since_epoch().count();
      rows.push_back(fmt::format("{} {} {}", fs::relative(it->path(), dir).string(), it->file_size(ec), mtime));
    }
  }
  std::sort(rows.begin(), rows.end());
  ContentHash h;
  for (const auto& r : rows) h.text(r);
  return fmt::format("{} files {}", rows.size(), h.hex());
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string StageCache::initial_model_key(const Recipe& recipe, const std::string& model_name) {
  const ModelSpec& m = recipe.model(model_name);
  std::string text = fmt::format("{} {}\nmodel {} arch {} seed {} channels {} image_size {} dataset {}\n", kVersion,
                                 version(), model_name, m.arch, recipe.run.seed, recipe.data.channels, recipe.data.image_size,
                                 to_string(recipe.data.dataset));
  for (const auto& [k, v] : m.options) text += fmt::format("option {} = {}\n", k, v);
  if (!m.weights.empty()) text += "weights " + file_digest(m.weights) + "\n";
  if (!m.init_from.empty()) text += "init_from " + m.init_from + "\n";
  if (m.num_classes > 0) text += fmt::format("num_classes {}\n", m.num_classes);
  if (m.in_channels > 0) text += fmt::format("in_channels {}\n", m.in_channels);
  if (m.image_size > 0) text += fmt::format("image_size {}\n", m.image_size);
  if (m.head != models::HeadPolicy::keep) text += fmt::format("head {}\n", to_string(m.head));
  return hash_hex(text);
}

std::string StageCache::stage_key(const Recipe& recipe, const StageSpec& stage,
                                  const std::map<std::string, std::string>& model_keys, Device device,
                                  int64_t max_batches_per_epoch) {
  // The data settings and the stage itself, as resolved TOML (workers do not change batches).
  Recipe part;
  part.run.seed = recipe.run.seed;
  part.data = recipe.data;
  part.data.workers = 0;
  part.data.cache_mb = DataSettings{}.cache_mb;  // nor does the decoded-image cache
  part.stages = {stage};
  // The machine's numerics too (thread count and OpenBLAS kernel set, or the GPU): an entry
  // trained under other kernels holds other digits than this run would compute.
  std::string text = fmt::format("{}\ncode {}\n{}\ndevice {}\nnumerics {}\nmax_batches {}\n", kVersion, code_digest(),
                                 to_toml(part), device.is_cpu() ? "cpu" : "cuda", describe_machine(device).numerics_key(),
                                 max_batches_per_epoch);
  text += "data files " + directory_listing_digest(recipe.data.root) + "\n";
  // Data-parallel ranks compute other digits (slices, SyncBN): an entry is per rank count.
  if (const int ranks = dist::world().size(); ranks > 1) text += fmt::format("ranks {}\n", ranks);
  if (!recipe.data.extra_unlabelled_folder.empty())
    text += "extra files " + directory_listing_digest(recipe.data.extra_unlabelled_folder) + "\n";
  std::vector<std::string> used = stage.teachers;
  used.push_back(stage.train);
  if (stage.retrieve_k > 0) used.push_back(stage.retrieve_with.empty() ? stage.teachers.at(0) : stage.retrieve_with);
  for (const auto& name : used) text += fmt::format("model {} state {}\n", name, model_keys.at(name));
  return hash_hex(text);
}

std::optional<CachedStage> StageCache::find(const std::string& key) const {
  if (!enabled()) return std::nullopt;
  const fs::path entry = fs::path(dir_) / key;
  if (!fs::exists(entry / "result.json") || !fs::exists(entry / "model.safetensors")) return std::nullopt;
  CachedStage out;
  auto file = read_safetensors((entry / "model.safetensors").string());
  for (auto& [name, t] : file.tensors) out.weights[name] = t;
  for (auto& [k, v] : file.metadata)
    if (k.rfind(nn::kModelFileRngPrefix, 0) == 0) out.rngs[k] = v;
  nlohmann::json j = nlohmann::json::parse(read_text(entry / "result.json"));
  out.result = j.at("result");
  for (const auto& m : j.at("metrics")) out.metrics.push_back(eval_record_from_json(m));
  if (fs::exists(entry / "losses.safetensors"))
    for (auto& [name, t] : read_safetensors((entry / "losses.safetensors").string()).tensors) out.loss_state[name] = t;
  return out;
}

void StageCache::store(const std::string& key, const models::Model& model, const nlohmann::json& result,
                       const std::vector<EvalRecord>& metrics, const nn::NamedTensors& loss_state) const {
  if (!enabled()) return;
  const fs::path entry = fs::path(dir_) / key;
  if (fs::exists(entry)) return;  // another run stored the same stage first
  const fs::path tmp = fs::path(dir_) / fmt::format(".{}.tmp.{}", key, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  StringMap rngs;
  nn::capture_module_rngs(model, nn::kModelFileRngPrefix, rngs);
  write_safetensors((tmp / "model.safetensors").string(), model.state_dict(), rngs);
  if (!loss_state.empty()) write_safetensors((tmp / "losses.safetensors").string(), loss_state, {});
  nlohmann::json records = nlohmann::json::array();
  for (const auto& m : metrics) records.push_back(to_json(m));
  write_file_atomic(tmp / "result.json", nlohmann::json{{"result", result}, {"metrics", records}}.dump(1) + "\n");
  std::error_code ec;
  fs::rename(tmp, entry, ec);
  if (ec) fs::remove_all(tmp);  // lost a race with an identical entry: keep the first one
}

}  // namespace retort
