// Weights from safetensors into models by name (see import_weights.h).
#include "models/import_weights.h"
#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "models/vit.h"

namespace retort::models {

namespace {

const std::string kModelPrefix = "model.";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Side of a square grid of n cells, or -1 when n is not a square.
int64_t square_side(int64_t n) {
  if (n <= 0) return -1;
  auto s = int64_t(std::llround(std::sqrt(double(n))));
  return s * s == n ? s : -1;
}

// PyTorch's antialiased cubic filter (UpSampleKernel.cpp aa_filter, Keys a = -0.5).
double aa_cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// Per output index along one axis: first input index and normalised weights, as PyTorch's
// _compute_indices_min_size_weights_aa for bicubic (interp_size 4), align_corners=False.
struct AxisWeights {
  std::vector<int64_t> first;
  std::vector<std::vector<double>> weights;
};
AxisWeights aa_bicubic_axis(int64_t in, int64_t out) {
  AxisWeights ax;
  const double scale = double(in) / double(out);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  const int64_t max_interp = int64_t(std::ceil(support)) * 2 + 1;
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (double(i) + 0.5);
    const int64_t xmin = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t xsize = std::clamp<int64_t>(std::min<int64_t>(int64_t(center + support + 0.5), in) - xmin, 0, max_interp);
    std::vector<double> w(static_cast<size_t>(xsize), 0.0);
    double total = 0;
    for (int64_t j = 0; j < xsize; ++j) total += w[size_t(j)] = aa_cubic((double(j + xmin) - center + 0.5) * invscale);
    if (total != 0)
      for (double& x : w) x /= total;
    ax.first.push_back(xmin);
    ax.weights.push_back(std::move(w));
  }
  return ax;
}

std::string join_lines(const std::vector<std::string>& items) { return fmt::format("{}", fmt::join(items, "\n    ")); }

}  // namespace

std::vector<std::string> ImportReport::lines() const {
  std::vector<std::string> out;
  out.push_back(fmt::format("{}: loaded {} tensors", source, loaded));
  for (const auto& [what, n] : converted) out.push_back(fmt::format("  converted {} tensor{} {}", n, n == 1 ? "" : "s", what));
  if (!pos_embed_resampled.empty()) out.push_back("  resampled " + pos_embed_resampled);
  if (!defaulted.empty())
    out.push_back(fmt::format("  {} BatchNorm num_batches_tracked buffer{} not in the file (kept at 0)", defaulted.size(),
                              defaulted.size() == 1 ? "" : "s"));
  if (!missing.empty())
    out.push_back(fmt::format("  warning: {} missing (kept as initialised): {}", missing.size(), fmt::join(missing, ", ")));
  if (!unexpected.empty())
    out.push_back(fmt::format("  warning: {} unexpected (ignored): {}", unexpected.size(), fmt::join(unexpected, ", ")));
  if (!head_note.empty()) out.push_back("  " + head_note);
  return out;
}

const char* to_string(HeadPolicy policy) {
  return policy == HeadPolicy::keep ? "keep" : policy == HeadPolicy::reset ? "reset" : "drop";
}

HeadPolicy parse_head_policy(const std::string& name) {
  for (HeadPolicy p : {HeadPolicy::keep, HeadPolicy::reset, HeadPolicy::drop})
    if (name == to_string(p)) return p;
  fail("head '{}' is not known: keep (load the file's classifier), reset (a fresh head for this task) or drop (no "
       "classifier)", name);
}

StoredState read_model_state(const std::string& path) {
  SafetensorsContents file = read_safetensors(path);
  StoredState state;
  auto format = file.metadata.find("retort.format");  // engine/io/checkpoint.cpp writes it
  state.from_checkpoint = format != file.metadata.end() && format->second.rfind("retort-checkpoint", 0) == 0;
  if (auto arch = file.metadata.find("arch"); arch != file.metadata.end()) state.arch = arch->second;
  state.metadata = file.metadata;
  for (auto& [name, t] : file.tensors) {
    std::string key = name;
    if (state.from_checkpoint) {
      if (name.rfind(kModelPrefix, 0) != 0) continue;  // optimizer state
      key = name.substr(kModelPrefix.size());
    }
    state.stored_dtypes[key] = file.stored_dtypes.count(name) ? file.stored_dtypes.at(name) : "";
    state.tensors[key] = t;
  }
  return state;
}

Tensor resample_pos_embed(const Tensor& pos, int64_t old_h, int64_t old_w, int64_t new_h, int64_t new_w,
                          int64_t prefix) {
  RETORT_CHECK(pos.dim() == 3 && pos.size(0) == 1 && prefix >= 0 && old_h > 0 && old_w > 0 && new_h > 0 && new_w > 0 &&
                   pos.size(1) == prefix + old_h * old_w,
               "resample_pos_embed: pos_embed {} is not [1, {} + {}x{}, D]", pos.str(), prefix, old_h, old_w);
  const int64_t D = pos.size(2);
  const std::vector<double> in = pos.to_vector();
  const AxisWeights ax_w = aa_bicubic_axis(old_w, new_w), ax_h = aa_bicubic_axis(old_h, new_h);
  std::vector<double> out(size_t((prefix + new_h * new_w) * D));
  std::copy(in.begin(), in.begin() + prefix * D, out.begin());  // class token(s) kept
  const double* grid = in.data() + prefix * D;
  // Width first, then height, as PyTorch's separable kernel does.
  std::vector<double> rows(size_t(old_h * new_w * D), 0.0);
  for (int64_t y = 0; y < old_h; ++y)
    for (int64_t x = 0; x < new_w; ++x) {
      double* dst = rows.data() + (y * new_w + x) * D;
      const auto& w = ax_w.weights[size_t(x)];
      for (size_t j = 0; j < w.size(); ++j) {
        const double* src = grid + (y * old_w + ax_w.first[size_t(x)] + int64_t(j)) * D;
        for (int64_t d = 0; d < D; ++d) dst[d] += w[j] * src[d];
      }
    }
  double* out_grid = out.data() + prefix * D;
  for (int64_t y = 0; y < new_h; ++y) {
    const auto& w = ax_h.weights[size_t(y)];
    for (int64_t x = 0; x < new_w; ++x) {
      double* dst = out_grid + (y * new_w + x) * D;
      for (size_t j = 0; j < w.size(); ++j) {
        const double* src = rows.data() + ((ax_h.first[size_t(y)] + int64_t(j)) * new_w + x) * D;
        for (int64_t d = 0; d < D; ++d) dst[d] += w[j] * src[d];
      }
    }
  }
  return Tensor::from_vector(out, {1, prefix + new_h * new_w, D}, pos.dtype(), pos.device());
}

namespace {
// The classifier's tensors: the model's head ("fc." / "head.") and DeiT's distillation head.
bool is_classifier_tensor(const Model& model, const std::string& name) {
  return name.rfind(model.head_name() + ".", 0) == 0 || name.rfind("head_dist.", 0) == 0;
}

// head = reset | drop: the file's classifier tensors taken out of `state` (listed in the report
// with their shapes), and what the model has instead.
StoredState without_file_head(const Model& model, const StoredState& state, HeadPolicy policy, ImportReport& report) {
  StoredState kept = state;
  for (const auto& [name, t] : state.tensors)
    if (is_classifier_tensor(model, name)) {
      report.head_left.push_back(name + " " + shape_str(t.shape()));
      kept.tensors.erase(name);
    }
  int64_t own_head = 0, classes = 0;
  for (const auto& [name, t] : model.state_dict())
    if (is_classifier_tensor(model, name)) {
      ++own_head;
      if (t.dim() == 2) classes = t.size(0);
    }
  const std::string left = report.head_left.empty()
                               ? std::string("the file holds no classifier")
                               : fmt::format("the file's classifier ({}) is not loaded", fmt::join(report.head_left, ", "));
  if (policy == HeadPolicy::reset)
    report.head_note = fmt::format("head reset: {}; the model's own {}-class head keeps its seeded initialisation", left,
                                   classes);
  else {
    RETORT_CHECK(own_head == 0, "{}: head = \"drop\" needs a model built without a classifier (num_classes = 0); "
                 "this one has {} classifier tensors", report.source, own_head);
    report.head_note = fmt::format("head dropped: {}; the model has no classifier (its output is its pooled feature)",
                                   left);
  }
  return kept;
}
}  // namespace

ImportReport load_weights(Model& model, const StoredState& stored, const std::string& source,
                          const ImportOptions& options) {
  ImportReport report;
  report.source = source;
  const bool leave_head = options.head != HeadPolicy::keep;
  const StoredState state = leave_head ? without_file_head(model, stored, options.head, report) : stored;
  std::vector<std::string> missing, unexpected, mismatched, hints;
  std::map<std::string, Tensor> to_load;
  std::set<std::string> own;
  for (const auto& [name, live] : model.state_dict()) {
    own.insert(name);
    if (leave_head && is_classifier_tensor(model, name)) continue;  // the model's own head stays
    auto it = state.tensors.find(name);
    if (it == state.tensors.end()) {
      if (ends_with(name, "num_batches_tracked")) report.defaulted.push_back(name);
      else missing.push_back(name);
      continue;
    }
    Tensor src = it->second;
    // CLS, and DeiT's distillation token, stay as they are; the patch grid is resampled
    const auto* vit = dynamic_cast<const VisionTransformer*>(&model);
    const int64_t prefix = vit ? vit->prefix_tokens() : 1;
    if (name == "pos_embed" && options.resample_pos_embed && src.shape() != live.shape() && src.dim() == 3 &&
        live.dim() == 3 && src.size(0) == 1 && live.size(0) == 1 && src.size(2) == live.size(2)) {
      int64_t old_side = square_side(src.size(1) - prefix), new_side = square_side(live.size(1) - prefix);
      if (old_side > 0 && new_side > 0) {
        src = resample_pos_embed(src.to(DType::f64), old_side, old_side, new_side, new_side, prefix);
        report.pos_embed_resampled = fmt::format(
            "pos_embed {} -> {} ({}x{} -> {}x{} patch grid, bicubic antialias as timm, {} kept)",
            shape_str(it->second.shape()), shape_str(live.shape()), old_side, old_side, new_side, new_side,
            prefix == 1 ? "class token" : "class and distillation tokens");
      }
    }
    if (is_floating(src.dtype()) != is_floating(live.dtype())) {
      mismatched.push_back(fmt::format("'{}': {} in the file but {} in the model", name, src.str(), live.str()));
      continue;
    }
    const bool scalar_ok = live.numel() == 1 && src.numel() == 1;  // num_batches_tracked [] vs [1]
    if (src.shape() != live.shape() && !scalar_ok) {
      mismatched.push_back(fmt::format("'{}': shape {} in the file but {} in the model", name, shape_str(src.shape()),
                                       shape_str(live.shape())));
      if ((name == "fc.weight" || name == "head.weight") && src.dim() == 2 && live.dim() == 2 &&
          src.size(0) != live.size(0) && src.size(1) == live.size(1))
        hints.push_back(fmt::format("the classifier '{}' has {} outputs in the file and {} in the model: for a new "
                                    "task, leave the file's head out (recipe: head = \"reset\" in the model's table; "
                                    "retort import: --head reset), or build the model with {} classes (num_classes)",
                                    name, src.size(0), live.size(0), src.size(0)));
      continue;
    }
    auto stored = state.stored_dtypes.find(name);
    std::string from = stored != state.stored_dtypes.end() && !stored->second.empty() ? stored->second
                                                                                       : dtype_name(it->second.dtype());
    if (it->second.dtype() != live.dtype() || from == "F16")
      ++report.converted[fmt::format("{} -> {}", from, dtype_name(live.dtype()))];
    to_load[name] = src;
  }
  for (const auto& [name, t] : state.tensors)
    if (!own.count(name)) unexpected.push_back(name);

  std::vector<std::string> problems;
  if (options.strict && !missing.empty())
    problems.push_back(fmt::format("{} missing (in the model, not in the file):\n    {}", missing.size(), join_lines(missing)));
  if (options.strict && !unexpected.empty())
    problems.push_back(
        fmt::format("{} unexpected (in the file, not in the model):\n    {}", unexpected.size(), join_lines(unexpected)));
  if (!mismatched.empty())
    problems.push_back(fmt::format("{} with another shape or kind:\n    {}", mismatched.size(), join_lines(mismatched)));
  // Shapes that differ beyond the classifier: the file holds another architecture.
  const bool body_differs = std::any_of(mismatched.begin(), mismatched.end(), [](const std::string& m) {
    return m.rfind("'fc.", 0) != 0 && m.rfind("'head.", 0) != 0;
  });
  if (body_differs) {
    hints.clear();  // a classifier hint would not help
    hints.push_back(fmt::format("these weights are of another architecture{}: {} of the model's {} tensors differ in "
                                "shape; load them into the model they were trained as",
                                state.arch.empty() ? std::string() : fmt::format(" (the file says '{}')", state.arch),
                                mismatched.size(), own.size()));
  }
  for (const auto& h : hints) problems.push_back("hint: " + h);
  if (!problems.empty())
    fail("{}: the weights do not fit {} '{}' ({} tensors in the file, {} in the model){}:\n  {}", source,
         model.type_name(), model.family(), state.tensors.size(), own.size(),
         options.strict ? " [strict loading; non-strict loading ignores missing and unexpected names]" : "",
         fmt::join(problems, "\n  "));

  model.load_state_dict(to_load, /*strict=*/false);
  report.loaded = int64_t(to_load.size());
  report.missing = std::move(missing);
  report.unexpected = std::move(unexpected);
  return report;
}

ImportReport load_weights_file(Model& model, const std::string& path, const ImportOptions& options,
                               const std::function<void(const std::string&)>& log) {
  ImportReport report = load_weights(model, read_model_state(path), path, options);
  if (log)
    for (const auto& line : report.lines()) log(line);
  return report;
}

ImportTarget import_target(const std::string& arch, const StoredState& state, int64_t image_size, int64_t num_classes) {
  ImportTarget target;
  target.arch = arch;
  ModelConfig& cfg = target.config;
  auto find = [&](const std::string& name) -> const Tensor* {
    auto it = state.tensors.find(name);
    return it == state.tensors.end() ? nullptr : &it->second;
  };
  std::smatch m;
  static const std::regex vit_re(
      R"((vit_tiny|vit_small|vit_base|deit_tiny_distilled|deit_small_distilled|deit_base_distilled)(?:_patch(\d+)_(\d+))?)");
  const bool vit = std::regex_match(arch, m, vit_re);
  const int64_t prefix = std::string(m[1]).rfind("deit_", 0) == 0 ? 2 : 1;  // CLS (+ distillation token)
  const Tensor* first_conv = find(vit ? "patch_embed.proj.weight" : "conv1.weight");
  if (first_conv && first_conv->dim() == 4) cfg.in_channels = first_conv->size(1);
  const Tensor* classifier = find(vit ? "head.weight" : "fc.weight");
  if (num_classes > 0) cfg.num_classes = num_classes;
  else if (classifier && classifier->dim() == 2) cfg.num_classes = classifier->size(0);
  else
    fail("import {}: the file has no classifier ('{}'): pass --num-classes N (and --non-strict to keep a freshly "
         "initialised head)", arch, vit ? "head.weight" : "fc.weight");
  cfg.image_size = image_size > 0 ? image_size : 224;
  if (vit) {
    target.arch = m[1];
    if (m[2].matched) cfg.patch_size = std::stoll(m[2]);
    else if (first_conv && first_conv->dim() == 4) cfg.patch_size = first_conv->size(2);
    else cfg.patch_size = 16;
    if (image_size <= 0) {
      const Tensor* pos = find("pos_embed");
      int64_t side = pos && pos->dim() == 3 ? square_side(pos->size(1) - prefix) : -1;
      if (m[3].matched) cfg.image_size = std::stoll(m[3]);
      else if (side > 0) cfg.image_size = side * cfg.patch_size;
    }
    int64_t depth = 0;
    static const std::regex block_re(R"(blocks\.(\d+)\..*)");
    for (const auto& [name, t] : state.tensors) {
      std::smatch b;
      if (std::regex_match(name, b, block_re) && b[1].length() <= 6) depth = std::max<int64_t>(depth, std::stoll(b[1]) + 1);
    }
    cfg.depth = depth > 0 ? depth : 12;
  }
  return target;
}

}  // namespace retort::models
