// Recipe key sets and key suggestions (the loss schemas are transfer/loss_schema.h's).
#include "train/recipe_schema.h"
#include "train/recipe_fields.h"
#include "train/recipe_internal.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"

namespace retort {

// ---- key sets -------------------------------------------------------------------------

namespace recipe_keys {
namespace {
std::vector<std::string> doc_keys(const std::vector<recipe_detail::KeyDoc>& docs) {
  std::vector<std::string> keys;
  for (const auto& d : docs) keys.push_back(d.key);
  return keys;
}
}  // namespace

const std::vector<std::string>& root() {
  static const std::vector<std::string> k = {"run", "data", "models", "stages"};
  return k;
}
const std::vector<std::string>& run() {
  static const auto k = field_keys(run_fields());
  return k;
}
const std::vector<std::string>& data() {
  static const auto k = field_keys(data_fields());
  return k;
}
const std::vector<std::string>& augment() {
  static const auto k = field_keys(augment_fields());
  return k;
}
const std::vector<std::string>& model() {
  static const auto k = field_keys(model_fields());
  return k;
}
const std::vector<std::string>& stage() {
  static const auto k = field_keys(stage_fields());
  return k;
}
const std::vector<std::string>& optimizer() {
  static const auto k = doc_keys(recipe_detail::optimizer_key_docs());
  return k;
}
const std::vector<std::string>& schedule() {
  static const auto k = doc_keys(recipe_detail::schedule_key_docs());
  return k;
}
const std::vector<std::string>& loss_common() {
  static const std::vector<std::string> k = {"name", "weight"};
  return k;
}

std::vector<std::string> loss(std::string_view loss_name) {
  std::vector<std::string> keys = loss_common();
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
