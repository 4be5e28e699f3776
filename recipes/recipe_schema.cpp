// Recipe key sets, the loss-schema and architecture registries, and key suggestions.
#include "recipes/recipe_schema.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"

namespace retort {

const char* describe_kind(ValueKind kind) {
  switch (kind) {
    case ValueKind::number: return "a number";
    case ValueKind::integer: return "an integer";
    case ValueKind::boolean: return "a boolean";
    case ValueKind::string: return "a string";
    case ValueKind::model: return "a string naming a model";
    case ValueKind::models: return "an array of model names";
    case ValueKind::numbers: return "an array of numbers";
    case ValueKind::strings: return "an array of strings";
  }
  return "?";
}

std::optional<ParamValue> coerce_param(const ParamValue& value, ValueKind kind) {
  switch (kind) {
    case ValueKind::number:
      if (auto* d = std::get_if<double>(&value)) return *d;
      if (auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
      return std::nullopt;
    case ValueKind::integer:
      if (std::holds_alternative<int64_t>(value)) return value;
      return std::nullopt;
    case ValueKind::boolean:
      if (std::holds_alternative<bool>(value)) return value;
      return std::nullopt;
    case ValueKind::string:
    case ValueKind::model:
      if (std::holds_alternative<std::string>(value)) return value;
      return std::nullopt;
    case ValueKind::models:
    case ValueKind::strings:
      if (std::holds_alternative<std::vector<std::string>>(value)) return value;
      return std::nullopt;
    case ValueKind::numbers:
      if (std::holds_alternative<std::vector<double>>(value)) return value;
      return std::nullopt;
  }
  return std::nullopt;
}

// ---- ParamSpec ------------------------------------------------------------------------

ParamSpec::ParamSpec(std::string key_, ValueKind kind_, ParamValue default_value_, std::string help_)
    : key(std::move(key_)), kind(kind_), help(std::move(help_)) {
  auto coerced = coerce_param(default_value_, kind);
  RETORT_CHECK(coerced.has_value(), "loss parameter '{}': its default value is not {}", key,
               describe_kind(kind));
  default_value = std::move(coerced);
}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, RequiredTag, std::string help_)
    : key(std::move(key_)), kind(kind_), required(true), help(std::move(help_)) {}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, OptionalTag, std::string help_)
    : key(std::move(key_)), kind(kind_), help(std::move(help_)) {}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, const char* default_value_, std::string help_)
    : ParamSpec(std::move(key_), kind_, ParamValue(std::string(default_value_)), std::move(help_)) {}

const ParamSpec* LossSchema::find(std::string_view key) const {
  for (const auto& p : params)
    if (p.key == key) return &p;
  return nullptr;
}

// ---- registries -----------------------------------------------------------------------

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, LossSchema, std::less<>> losses;
  std::vector<std::string> archs;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->losses["ce"] = LossSchema{
        "ce", {ParamSpec("label_smoothing", ValueKind::number, 0.0, "label smoothing epsilon")},
        "cross-entropy with the labels"};
    reg->losses["kd"] = LossSchema{
        "kd",
        {ParamSpec("teacher", ValueKind::model, kRequired, "the model whose logits are distilled"),
         ParamSpec("T", ValueKind::number, 4.0, "softmax temperature")},
        "Hinton KD: T^2 * KL(softmax(z_t/T) || softmax(z_s/T))"};
    return reg;
  }();
  return *r;
}

}  // namespace

void register_loss_schema(std::string name, std::vector<ParamSpec> params, std::string help) {
  RETORT_CHECK(!name.empty(), "register_loss_schema: empty loss name");
  for (size_t i = 0; i < params.size(); ++i) {
    RETORT_CHECK(params[i].key != "name" && params[i].key != "weight",
                 "register_loss_schema('{}'): '{}' is a common key of every loss term", name, params[i].key);
    for (size_t j = 0; j < i; ++j)
      RETORT_CHECK(params[i].key != params[j].key, "register_loss_schema('{}'): key '{}' declared twice", name,
                   params[i].key);
  }
  auto& reg = registry();
  std::lock_guard lock(reg.mutex);
  reg.losses[name] = LossSchema{name, std::move(params), std::move(help)};
}

const LossSchema* find_loss_schema(std::string_view name) {
  auto& reg = registry();
  std::lock_guard lock(reg.mutex);
  auto it = reg.losses.find(name);
  return it == reg.losses.end() ? nullptr : &it->second;  // map nodes are stable
}

std::vector<std::string> registered_losses() {
  auto& reg = registry();
  std::lock_guard lock(reg.mutex);
  std::vector<std::string> names;
  for (const auto& [n, s] : reg.losses) names.push_back(n);
  return names;
}

void register_model_arch(std::string name) {
  auto& reg = registry();
  std::lock_guard lock(reg.mutex);
  if (std::find(reg.archs.begin(), reg.archs.end(), name) == reg.archs.end()) reg.archs.push_back(std::move(name));
  std::sort(reg.archs.begin(), reg.archs.end());
}

std::vector<std::string> registered_model_archs() {
  auto& reg = registry();
  std::lock_guard lock(reg.mutex);
  return reg.archs;
}

std::string param_to_toml(const ParamValue& value) {
  auto num = [](double d) {
    std::string t = fmt::format("{}", d);
    if (t.find_first_of(".eni") == std::string::npos) t += ".0";
    return t;
  };
  auto quoted = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') out += '\\', out += char(c);
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04X}", c);
      else out += char(c);
    }
    return out + "\"";
  };
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, int64_t>) return fmt::format("{}", v);
        else if constexpr (std::is_same_v<T, double>) return num(v);
        else if constexpr (std::is_same_v<T, std::string>) return quoted(v);
        else {
          std::string out = "[";
          for (size_t i = 0; i < v.size(); ++i) {
            if (i) out += ", ";
            if constexpr (std::is_same_v<T, std::vector<double>>) out += num(v[i]);
            else out += quoted(v[i]);
          }
          return out + "]";
        }
      },
      value);
}

std::string describe_loss_schemas() {
  std::string out;
  for (const auto& name : registered_losses()) {
    const LossSchema* s = find_loss_schema(name);
    out += fmt::format("{}{}{}\n", name, s->help.empty() ? "" : "  ", s->help);
    out += fmt::format("    {:<16} {}\n", "weight", "a number, default 1.0");
    for (const auto& p : s->params) {
      std::string type = describe_kind(p.kind);
      type += p.required ? ", required" : p.default_value ? ", default " + param_to_toml(*p.default_value) : ", optional";
      out += fmt::format("    {:<16} {}{}{}\n", p.key, type, p.help.empty() ? "" : "  ", p.help);
    }
  }
  return out;
}

// ---- key sets -------------------------------------------------------------------------

namespace recipe_keys {
const std::vector<std::string> root = {"run", "data", "models", "stages"};
const std::vector<std::string> run = {"name", "seed", "device", "out_dir"};
const std::vector<std::string> data = {"dataset",  "root",   "image_size",         "channels",
                                       "mean",     "std",    "augment",            "labelled_per_class",
                                       "val_size", "train_subset", "workers", "extra_unlabelled_folder"};
const std::vector<std::string> augment = {"random_crop_padding", "hflip"};
const std::vector<std::string> model = {"arch", "weights", "from_stage", "frozen", "options"};
const std::vector<std::string> stage = {"name",      "train",    "teachers", "epochs",         "batch_size",
                                        "eval_every", "optimizer", "schedule", "clip_grad_norm", "data",
                                        "trainable", "reset_head", "retrieve_k", "retrieve_with",
                                        "retrieve_tap", "teacher_cache", "losses"};
const std::vector<std::string> optimizer = {"type", "lr",    "momentum", "nesterov",
                                            "weight_decay", "betas", "eps", "no_decay_norm_bias"};
const std::vector<std::string> schedule = {"type", "milestones", "gamma", "warmup_epochs", "min_lr"};
const std::vector<std::string> loss_common = {"name", "weight"};

std::vector<std::string> loss(std::string_view loss_name) {
  std::vector<std::string> keys = loss_common;
  if (const LossSchema* s = find_loss_schema(loss_name))
    for (const auto& p : s->params) keys.push_back(p.key);
  return keys;
}
}  // namespace recipe_keys

// ---- suggestions ----------------------------------------------------------------------

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

// Words people write for a recipe key: synonym -> the key it means.
const std::vector<std::pair<std::string, std::string>> kSynonyms = {
    {"learning_rate", "lr"},       {"lr_rate", "lr"},
    {"temperature", "T"},          {"temp", "T"},
    {"tau", "T"},                  {"wd", "weight_decay"},
    {"decay", "weight_decay"},     {"num_epochs", "epochs"},
    {"max_epochs", "epochs"},      {"n_epochs", "epochs"},
    {"bs", "batch_size"},          {"batch", "batch_size"},
    {"batchsize", "batch_size"},   {"architecture", "arch"},
    {"model", "arch"},             {"model", "train"},
    {"student", "train"},          {"optim", "optimizer"},
    {"opt", "optimizer"},          {"scheduler", "schedule"},
    {"lr_schedule", "schedule"},   {"loss", "losses"},
    {"kind", "type"},              {"type", "name"},
    {"kind", "name"},              {"loss", "name"},
    {"alpha", "weight"},           {"checkpoint", "weights"},
    {"pretrained", "weights"},     {"path", "weights"},
    {"path", "root"},              {"dir", "root"},
    {"steps", "milestones"},       {"decay_epochs", "milestones"},
    {"lr_min", "min_lr"},          {"eta_min", "min_lr"},
    {"warmup", "warmup_epochs"},   {"epsilon", "eps"},
    {"max_grad_norm", "clip_grad_norm"}, {"grad_clip", "clip_grad_norm"},
    {"clip", "clip_grad_norm"},    {"smoothing", "label_smoothing"},
    {"padding", "random_crop_padding"}, {"crop_padding", "random_crop_padding"},
    {"flip", "hflip"},             {"horizontal_flip", "hflip"},
    {"output", "out_dir"},         {"output_dir", "out_dir"},
    {"outdir", "out_dir"},         {"num_workers", "workers"},
    {"size", "image_size"},        {"resolution", "image_size"},
    {"in_channels", "channels"},   {"teacher", "teachers"},
    {"dataset_root", "root"},      {"data_dir", "root"},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<std::string> nearest_key(std::string_view key, const std::vector<std::string>& candidates) {
  const std::string k = lower(key);
  // Score in half-steps so an exact-case match beats a case-insensitive one.
  size_t best_score = SIZE_MAX;
  std::optional<std::string> best;
  auto consider = [&](const std::string& candidate, std::string_view spelled) {
    size_t score = 2 * edit_distance(k, lower(spelled)) + (edit_distance(key, spelled) > 0 ? 1 : 0);
    if (score < best_score) best_score = score, best = candidate;
  };
  for (const auto& c : candidates) {
    consider(c, c);
    for (const auto& [synonym, target] : kSynonyms)
      if (target == c) consider(c, synonym);
  }
  if (!best) return std::nullopt;
  const size_t limit = std::max<size_t>(2, (k.size() + 2) / 3);  // edit steps allowed
  if (best_score / 2 > limit) return std::nullopt;
  return best;
}

std::string suggestion_suffix(std::string_view key, const std::vector<std::string>& candidates,
                              std::string_view what) {
  if (candidates.empty()) return fmt::format("; no {} are defined", what);
  if (auto near = nearest_key(key, candidates)) return fmt::format("; did you mean '{}'?", *near);
  return fmt::format("; valid {}: {}", what, fmt::join(candidates, ", "));
}

}  // namespace retort
