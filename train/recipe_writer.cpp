// Writes a Recipe back as TOML with every default filled in (the run directory's
// resolved.toml): each table through its field table (train/recipe_fields.h), and the
// optimizer, schedule and loss terms as inline tables. The output parses back to an equal Recipe.
#include <fmt/format.h>
#include "train/recipe.h"
#include "train/recipe_fields.h"
#include "train/recipe_internal.h"

namespace retort {
namespace recipe_detail {

std::string optimizer_toml(const OptimizerSettings& o) {
  std::string s = fmt::format("{{ type = {}, lr = {}", toml_string(to_string(o.type)), toml_number(o.lr));
  if (o.type == OptimizerKind::sgd) {
    s += fmt::format(", momentum = {}, nesterov = {}", toml_number(o.momentum), toml_bool(o.nesterov));
  } else {
    std::string betas = "[";
    for (size_t i = 0; i < o.betas.size(); ++i) betas += (i ? ", " : "") + toml_number(o.betas[i]);
    s += fmt::format(", betas = {}], eps = {}", betas, toml_number(o.eps));
  }
  return s + fmt::format(", weight_decay = {}, no_decay_norm_bias = {} }}", toml_number(o.weight_decay),
                         toml_bool(o.no_decay_norm_bias));
}

std::string schedule_toml(const ScheduleSettings& s) {
  std::string out = fmt::format("{{ type = {}", toml_string(to_string(s.type)));
  if (s.type == ScheduleKind::multistep) {
    std::string milestones = "[";
    for (size_t i = 0; i < s.milestones.size(); ++i) milestones += (i ? ", " : "") + toml_integer(s.milestones[i]);
    out += fmt::format(", milestones = {}], gamma = {}", milestones, toml_number(s.gamma));
  }
  if (s.type == ScheduleKind::cosine) out += fmt::format(", min_lr = {}", toml_number(s.min_lr));
  return out + fmt::format(", warmup_epochs = {} }}", toml_number(s.warmup_epochs));
}

std::string loss_toml(const LossTerm& term) {
  std::string out = fmt::format("{{ name = {}, weight = {}", toml_string(term.name), toml_number(term.weight));
  for (const auto& [k, p] : term.params) out += fmt::format(", {} = {}", toml_key(k), param_to_toml(p.value));
  return out + " }";
}

}  // namespace recipe_detail

std::string to_toml(const Recipe& r) {
  std::string out = "# Resolved recipe: every default filled in";
  out += r.source.empty() ? ".\n" : fmt::format(" (from {}).\n", r.source);
  out += "\n[run]\n" + write_fields(run_fields(), r.run);
  out += "\n[data]\n" + write_fields(data_fields(), r.data);
  for (const auto& [name, m] : r.models) out += fmt::format("\n[models.{}]\n", toml_key(name)) + write_fields(model_fields(), m);
  for (const StageSpec& s : r.stages) out += "\n[[stages]]\n" + write_fields(stage_fields(), s);
  return out;
}

}  // namespace retort
