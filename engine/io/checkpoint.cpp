// save_checkpoint / load_checkpoint on top of the safetensors reader and atomic writer.
#include "engine/io/checkpoint.h"
#include <cmath>
#include <charconv>
#include <set>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/optim/optimizer.h"
#include "engine/random.h"

namespace retort {

namespace {
constexpr const char* kFormatKey = "retort.format";
constexpr const char* kFormat = "retort-checkpoint-1";
const std::string kModel = "model.", kOptim = "optim.", kUser = "user.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

template <typename T>
T parse_number(const std::string& path, const std::string& key, const std::string& text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  RETORT_CHECK(ec == std::errc() && ptr == text.data() + text.size(), "checkpoint '{}': metadata '{}' = \"{}\" is not a valid {}",
               path, key, text, std::is_floating_point_v<T> ? "number" : "integer");
  return value;
}

const std::string& required(const std::string& path, const StringMap& meta, const std::string& key) {
  auto it = meta.find(key);
  RETORT_CHECK(it != meta.end(), "checkpoint '{}': metadata '{}' is missing", path, key);
  return it->second;
}

TrainingProgress progress_from(const std::string& path, const StringMap& meta) {
  auto format = meta.find(kFormatKey);
  RETORT_CHECK(format != meta.end() && format->second == kFormat,
               "checkpoint '{}': not a retort checkpoint (metadata '{}' is '{}', expected '{}')", path, kFormatKey,
               format == meta.end() ? "absent" : format->second, kFormat);
  TrainingProgress p;
  p.step = parse_number<int64_t>(path, "step", required(path, meta, "step"));
  p.epoch = parse_number<int64_t>(path, "epoch", required(path, meta, "epoch"));
  p.batch_in_epoch = parse_number<int64_t>(path, "batch_in_epoch", required(path, meta, "batch_in_epoch"));
  p.rng_seed = parse_number<uint64_t>(path, "rng.seed", required(path, meta, "rng.seed"));
  p.rng_offset = parse_number<uint64_t>(path, "rng.offset", required(path, meta, "rng.offset"));
  p.stage = required(path, meta, "stage");
  for (const auto& [k, v] : meta)
    if (starts_with(k, kUser)) p.extra[k.substr(kUser.size())] = v;
  return p;
}
}  // namespace

void TrainingProgress::capture_rng(const Generator& gen) {
  rng_seed = gen.seed();
  rng_offset = gen.offset();
}
void TrainingProgress::restore_rng(Generator& gen) const { gen.set_state(rng_seed, rng_offset); }

void save_checkpoint(const std::string& path, const NamedTensors& model_tensors, const Optimizer* optimizer,
                     const TrainingProgress& progress) {
  NamedTensors tensors;
  StringMap meta;
  meta[kFormatKey] = kFormat;
  meta["step"] = std::to_string(progress.step);
  meta["epoch"] = std::to_string(progress.epoch);
  meta["batch_in_epoch"] = std::to_string(progress.batch_in_epoch);
  meta["rng.seed"] = std::to_string(progress.rng_seed);
  meta["rng.offset"] = std::to_string(progress.rng_offset);
  meta["stage"] = progress.stage;
  for (const auto& [k, v] : progress.extra) meta[kUser + k] = v;
  for (const auto& [name, t] : model_tensors) {
    RETORT_CHECK(t.defined(), "save_checkpoint '{}': model tensor '{}' is undefined", path, name);
    tensors.emplace_back(kModel + name, t.detach());
  }
  if (optimizer) {
    OptimizerState state = optimizer->export_state();
    meta["optimizer"] = optimizer->name();
    for (auto& [name, t] : state.tensors) tensors.emplace_back(kOptim + name, t);
    // fmt's shortest representation of a double reads back to the same bits.
    for (const auto& [name, v] : state.scalars) meta[kOptim + name] = fmt::format("{}", v);
  }
  write_safetensors(path, tensors, meta);
}

TrainingProgress read_checkpoint_progress(const std::string& path) {
  return progress_from(path, read_safetensors(path).metadata);
}

namespace {
// The index of the first NaN or infinite element of a host tensor read from a file, or -1.
int64_t first_nonfinite(const Tensor& t) {
  const Tensor c = t.contiguous();
  const int64_t n = c.numel();
  if (c.dtype() == DType::f32) {
    const float* p = c.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return i;
  } else if (c.dtype() == DType::f64) {
    const double* p = c.data<double>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return i;
  } else if (c.dtype() == DType::bf16) {
    const auto values = c.to_vector();
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i])) return int64_t(i);
  }
  return -1;
}

// A checkpoint whose weights or optimizer state hold NaN or infinity would resume into a run
// that cannot recover; it is refused, naming the tensor and the element.
void check_finite(const std::string& path, const SafetensorsContents& file) {
  for (const auto& [name, t] : file.tensors) {
    const int64_t at = first_nonfinite(t);
    RETORT_CHECK(at < 0, "load_checkpoint '{}': tensor '{}' holds a non-finite value (element {} is {}); the run "
                 "that wrote it had diverged: resume from an earlier checkpoint", path, name, at,
                 t.to_vector()[size_t(at)]);
  }
}
}  // namespace

TrainingProgress load_checkpoint(const std::string& path, const NamedTensors& model_tensors, Optimizer* optimizer) {
  SafetensorsContents file = read_safetensors(path);
  TrainingProgress progress = progress_from(path, file.metadata);
  check_finite(path, file);

  std::map<std::string, const Tensor*> saved;
  for (const auto& [name, t] : file.tensors)
    if (starts_with(name, kModel)) saved[name.substr(kModel.size())] = &t;
  std::vector<std::string> problems;
  std::set<std::string> live;
  for (const auto& [name, t] : model_tensors) {
    live.insert(name);
    auto it = saved.find(name);
    if (it == saved.end()) problems.push_back(fmt::format("missing 'model.{}' (live {})", name, t.str()));
    else if (it->second->shape() != t.shape())
      problems.push_back(fmt::format("mismatched 'model.{}': saved {} but live {}", name, shape_str(it->second->shape()),
                                     shape_str(t.shape())));
  }
  for (const auto& [name, t] : saved)
    if (!live.count(name)) problems.push_back(fmt::format("unexpected 'model.{}' ({}): no live tensor has that name", name, t->str()));
  if (!problems.empty())
    fail("load_checkpoint '{}': the checkpoint does not fit the model ({} problem{}):\n  {}", path, problems.size(),
         problems.size() == 1 ? "" : "s", fmt::join(problems, "\n  "));

  if (optimizer) {
    auto it = file.metadata.find("optimizer");
    RETORT_CHECK(it != file.metadata.end(), "load_checkpoint '{}': the checkpoint holds no optimizer state", path);
    RETORT_CHECK(it->second == optimizer->name(), "load_checkpoint '{}': the checkpoint holds {} state, not {}", path,
                 it->second, optimizer->name());
    OptimizerState state;
    for (const auto& [name, t] : file.tensors)
      if (starts_with(name, kOptim)) state.tensors.emplace_back(name.substr(kOptim.size()), t);
    for (const auto& [k, v] : file.metadata)
      if (starts_with(k, kOptim)) {
        const double value = parse_number<double>(path, k, v);
        RETORT_CHECK(std::isfinite(value), "load_checkpoint '{}': metadata '{}' = \"{}\" is not finite", path, k, v);
        state.scalars[k.substr(kOptim.size())] = value;
      }
    try {
      optimizer->import_state(state);  // all-or-nothing
    } catch (const Error& e) {
      fail("load_checkpoint '{}': {}", path, e.what());
    }
  }
  NoGradGuard no_grad;
  for (const auto& [name, t] : model_tensors) {
    Tensor live_tensor = t;
    live_tensor.copy_(*saved.at(name));
  }
  return progress;
}

}  // namespace retort
