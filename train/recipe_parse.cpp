// TOML tree -> typed Recipe. The plain tables ([run], [data], [models.*], [[stages]]) are read
// through their field tables (train/recipe_fields.h); here are the rest: the dataset defaults,
// the optimizer and schedule (keys by type), the loss terms (keys by schema), and the tree.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "train/recipe_fields.h"
#include "train/recipe_internal.h"

namespace retort::recipe_detail {

DatasetDefaults dataset_defaults(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::fashion_mnist:
      return {"/usr/share/datasets/fashion-mnist", 28, 1, {0.2860}, {0.3530}};
    case DatasetKind::cifar10:
      return {nullptr, 32, 3, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
    case DatasetKind::cifar100:
      return {nullptr, 32, 3, {0.5071, 0.4867, 0.4408}, {0.2675, 0.2565, 0.2761}};
    case DatasetKind::folder:
      return {nullptr, 32, 3, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  }
  return {};
}

const std::vector<KeyDoc>& optimizer_key_docs() {
  static const std::vector<KeyDoc> docs = {
      {"type", "\"sgd\" | \"adamw\"", "\"sgd\"", "the optimizer"},
      {"lr", "a number, positive", "0.05 (sgd), 1e-3 (adamw)", "the learning rate (the schedule scales it)"},
      {"momentum", "a number in [0, 1)", "0.9", "sgd only"},
      {"nesterov", "a boolean", "false", "sgd only: Nesterov momentum"},
      {"weight_decay", "a number, at least 0", "5e-4 (sgd), 1e-2 (adamw)", "L2 (sgd) or decoupled (adamw) decay"},
      {"betas", "two numbers in [0, 1)", "[0.9, 0.999]", "adamw only"},
      {"eps", "a number, positive", "1e-8", "adamw only"},
      {"no_decay_norm_bias", "a boolean", "false", "no weight decay on norm weights and biases"},
  };
  return docs;
}

const std::vector<KeyDoc>& schedule_key_docs() {
  static const std::vector<KeyDoc> docs = {
      {"type", "\"constant\" | \"cosine\" | \"multistep\"", "\"constant\"", "how lr changes over the stage"},
      {"milestones", "increasing epochs >= 1", "required (multistep)", "multistep: epochs where lr *= gamma"},
      {"gamma", "a number, positive", "0.1", "multistep only"},
      {"warmup_epochs", "a number, at least 0", "0", "linear warm-up from 0, any schedule"},
      {"min_lr", "a number, at least 0", "0", "cosine only: the final lr"},
  };
  return docs;
}

namespace {

RunSettings parse_run(TableReader r, const std::string& default_name) {
  RunSettings run;
  run.name = default_name;
  read_fields(run_fields(), r, run);
  return run;
}

DataSettings parse_data(TableReader r) {
  DataSettings data;
  read_fields(data_fields(), r, data);
  return data;
}

ModelSpec parse_model(TableReader r, const std::string& name, ParseContext& ctx) {
  ModelSpec m;
  m.name = name;
  m.pos.line = ctx.line(&r.table());
  read_fields(model_fields(), r, m);
  return m;
}

StageSpec parse_stage(TableReader r, size_t index, ParseContext& ctx) {
  StageSpec s;
  s.pos.line = ctx.line(&r.table());
  s.name = fmt::format("stage{}", index);
  read_fields(stage_fields(), r, s);
  return s;
}

}  // namespace

OptimizerSettings parse_optimizer(TableReader r) {
  OptimizerSettings o;
  if (auto t = r.choice("type", {"sgd", "adamw"})) o.type = *t == "sgd" ? OptimizerKind::sgd : OptimizerKind::adamw;
  const bool sgd = o.type == OptimizerKind::sgd;
  o.lr = r.number_or("lr", sgd ? 0.05 : 1e-3);
  o.weight_decay = r.number_or("weight_decay", sgd ? 5e-4 : 1e-2);
  o.no_decay_norm_bias = r.boolean_or("no_decay_norm_bias", false);
  if (r.has("lr") && !(o.lr > 0)) r.invalid("lr", "positive");
  if (r.has("weight_decay") && !(o.weight_decay >= 0)) r.invalid("weight_decay", "at least 0");
  if (sgd) {
    o.momentum = r.number_or("momentum", 0.9);
    o.nesterov = r.boolean_or("nesterov", false);
    if (r.has("momentum") && !(o.momentum >= 0 && o.momentum < 1)) r.invalid("momentum", "in [0, 1)");
    if (o.nesterov && !(o.momentum > 0)) r.invalid("nesterov", "false when momentum is 0");
    r.reject_keys({"betas", "eps"}, "optimizer type 'sgd' (they are adamw settings)");
  } else {
    o.momentum = 0.9, o.nesterov = false;  // unused by adamw; fixed so equality is meaningful
    o.betas = r.numbers("betas").value_or(o.betas);
    o.eps = r.number_or("eps", o.eps);
    if (r.has("betas") && (o.betas.size() != 2 || std::any_of(o.betas.begin(), o.betas.end(), [](double b) {
                             return !(b >= 0 && b < 1);
                           })))
      r.invalid("betas", "two numbers in [0, 1)");
    if (r.has("eps") && !(o.eps > 0)) r.invalid("eps", "positive");
    r.reject_keys({"momentum", "nesterov"}, "optimizer type 'adamw' (they are sgd settings)");
  }
  return o;
}

ScheduleSettings parse_schedule(TableReader r) {
  ScheduleSettings s;
  if (auto t = r.choice("type", {"multistep", "cosine", "constant"}))
    s.type = *t == "multistep" ? ScheduleKind::multistep : *t == "cosine" ? ScheduleKind::cosine : ScheduleKind::constant;
  s.warmup_epochs = r.number_or("warmup_epochs", 0);
  if (r.has("warmup_epochs") && !(s.warmup_epochs >= 0)) r.invalid("warmup_epochs", "at least 0");
  const std::string used_by = fmt::format("schedule type '{}'", to_string(s.type));
  if (s.type == ScheduleKind::multistep) {
    if (r.require("milestones")) s.milestones = r.integers("milestones").value_or(std::vector<int64_t>{});
    s.gamma = r.number_or("gamma", 0.1);
    bool ascending = std::is_sorted(s.milestones.begin(), s.milestones.end(), std::less_equal<>()) &&
                     std::adjacent_find(s.milestones.begin(), s.milestones.end()) == s.milestones.end();
    if (r.has("milestones") && (!ascending || (!s.milestones.empty() && s.milestones.front() < 1)))
      r.invalid("milestones", "strictly increasing epochs, each at least 1");
    if (r.has("gamma") && !(s.gamma > 0)) r.invalid("gamma", "positive");
    r.reject_keys({"min_lr"}, used_by);
  } else if (s.type == ScheduleKind::cosine) {
    s.min_lr = r.number_or("min_lr", 0);
    if (r.has("min_lr") && !(s.min_lr >= 0)) r.invalid("min_lr", "at least 0");
    r.reject_keys({"milestones", "gamma"}, used_by);
  } else {
    r.reject_keys({"milestones", "gamma", "min_lr"}, used_by);
  }
  return s;
}

LossTerm parse_loss(const toml::node& node, ParseContext& ctx) {
  LossTerm term;
  const toml::table* t = node.as_table();
  if (!t) {
    ctx.error(&node, fmt::format("each element of 'losses' in [stages] must be a table like "
                                 "{{name = \"ce\", weight = 1.0}}, got {}",
                                 describe_node(node)));
    return term;
  }
  term.pos.line = ctx.line(t);
  const auto name = t->get("name") ? t->get("name")->value_exact<std::string>() : std::nullopt;
  const LossSchema* schema = name ? find_loss_schema(*name) : nullptr;
  if (!t->get("name")) {
    ctx.error(t, "missing required key 'name' in [stages.losses]: each loss term names its kind, e.g. "
                 "name = \"kd\"");
    return term;
  }
  if (!name) {
    ctx.error(t->get("name"), fmt::format("key 'name' in [stages.losses] must be a string, got {}",
                                          describe_node(*t->get("name"))));
    return term;
  }
  term.name = *name;
  if (!schema) {
    ctx.error(t->get("name"), fmt::format("unknown loss '{}' in [stages.losses]{}", *name,
                                          suggestion_suffix(*name, registered_losses(), "losses")));
    return term;
  }
  TableReader r(ctx, *t, "stages.losses." + *name, recipe_keys::loss(*name));
  term.weight = r.number_or("weight", schema->default_weight);
  for (const ParamSpec& spec : schema->params) {
    if (r.has(spec.key)) {
      auto v = r.param(spec.key, spec.kind);
      if (v && spec.valid && !spec.valid(*v)) r.invalid(spec.key, spec.must_be);
      if (v) term.params[spec.key] = LossParam{*v, {r.line(spec.key)}};
    } else if (spec.required) {
      r.require(spec.key);
    } else if (spec.default_value) {
      term.params[spec.key] = LossParam{*spec.default_value, {}};
    }
  }
  return term;
}

LossTerm default_loss_term() {
  LossTerm ce{"ce", 1.0, {}, {}};
  if (const LossSchema* schema = find_loss_schema("ce"))
    for (const auto& p : schema->params)
      if (p.default_value) ce.params[p.key] = LossParam{*p.default_value, {}};
  return ce;
}

Recipe parse_tree(const toml::table& root, ParseContext& ctx, const std::string& default_name) {
  Recipe recipe;
  TableReader top(ctx, root, "root", recipe_keys::root());
  static const toml::table empty;
  const toml::table* run = top.subtable("run");
  recipe.run = parse_run(TableReader(ctx, run ? *run : empty, "run", recipe_keys::run()), default_name);
  const toml::table* data = top.subtable("data");
  recipe.data = parse_data(TableReader(ctx, data ? *data : empty, "data", recipe_keys::data()));
  if (const toml::table* models = top.subtable("models")) {
    for (auto&& [key, value] : *models) {
      const std::string name(key.str());
      if (const toml::table* t = value.as_table())
        recipe.models[name] = parse_model(TableReader(ctx, *t, "models." + name, recipe_keys::model()), name, ctx);
      else
        ctx.error(&value, fmt::format("'models.{}' must be a table like [models.{}] with arch = \"...\", got {}",
                                      name, name, describe_node(value)));
    }
  }
  if (recipe.models.empty() && !top.has("models"))
    ctx.error(nullptr, "the recipe defines no models: add a [models.<name>] table with arch = \"...\"");
  if (const toml::array* stages = top.array("stages")) {
    for (size_t i = 0; i < stages->size(); ++i) {
      const toml::node& node = *stages->get(i);
      if (const toml::table* t = node.as_table())
        recipe.stages.push_back(parse_stage(TableReader(ctx, *t, "stages", recipe_keys::stage()), i, ctx));
      else
        ctx.error(&node, fmt::format("each element of 'stages' must be a table ([[stages]]), got {}",
                                     describe_node(node)));
    }
  }
  if (recipe.stages.empty() && ctx.ok())
    ctx.error(nullptr, "the recipe has no stages: add at least one [[stages]] table with train = \"<model>\"");
  return recipe;
}

}  // namespace retort::recipe_detail
