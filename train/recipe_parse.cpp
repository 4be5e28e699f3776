// TOML tree -> typed Recipe: every table's keys, types, value ranges and defaults.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "train/recipe_internal.h"

namespace retort::recipe_detail {
namespace {

const std::vector<std::string> kDatasets = {"fashion-mnist", "cifar10", "cifar100", "folder"};

struct DatasetDefaults {
  const char* root;  // nullptr: the recipe must say
  int64_t image_size;
  int64_t channels;
  std::vector<double> mean, std;
};

DatasetDefaults defaults_for(DatasetKind kind) {
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

// Dataset statistics adapted to the channel count (mean over channels, or repeated).
std::vector<double> per_channel(const std::vector<double>& stats, int64_t channels) {
  if (int64_t(stats.size()) == channels) return stats;
  double avg = 0;
  for (double s : stats) avg += s / double(stats.size());
  return std::vector<double>(size_t(std::max<int64_t>(channels, 0)), avg);
}

template <typename T>
void check_at_least(TableReader& r, std::string_view key, T value, T minimum) {
  if (r.has(key) && value < minimum) r.invalid(key, fmt::format("at least {}", minimum));
}

RunSettings parse_run(TableReader r, const std::string& default_name) {
  RunSettings run;
  run.name = r.string_or("name", default_name);
  run.seed = r.integer_or("seed", run.seed);
  run.device = r.string_or("device", run.device);
  run.out_dir = r.string_or("out_dir", run.out_dir);
  if (run.name.empty() || run.name.find('/') != std::string::npos)
    r.invalid("name", "a non-empty name without '/' (it names the run directory)");
  const std::string& d = run.device;
  bool device_ok = d == "auto" || d == "cpu" || d == "cuda" ||
                   (d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
                    std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; }));
  if (!device_ok) r.invalid("device", "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
  return run;
}

DataSettings parse_data(TableReader r) {
  DataSettings data;
  if (auto ds = r.choice("dataset", kDatasets))
    data.dataset = DatasetKind(std::find(kDatasets.begin(), kDatasets.end(), *ds) - kDatasets.begin());
  const DatasetDefaults def = defaults_for(data.dataset);
  if (def.root || r.has("root")) data.root = r.string_or("root", def.root ? def.root : "");
  else if (!r.has("dataset") || r.node("dataset")->is_string())
    r.context().error(&r.table(), fmt::format("missing required key 'root' in [data]: dataset '{}' has no "
                                              "default location",
                                              to_string(data.dataset)));
  data.image_size = r.integer_or("image_size", def.image_size);
  data.channels = r.integer_or("channels", def.channels);
  check_at_least<int64_t>(r, "image_size", data.image_size, 1);
  check_at_least<int64_t>(r, "channels", data.channels, 1);
  data.mean = r.numbers("mean").value_or(per_channel(def.mean, data.channels));
  data.std = r.numbers("std").value_or(per_channel(def.std, data.channels));
  for (const char* key : {"mean", "std"}) {
    const auto& v = std::string_view(key) == "mean" ? data.mean : data.std;
    if (r.has(key) && int64_t(v.size()) != data.channels)
      r.invalid(key, fmt::format("an array of {} numbers (one per channel)", data.channels));
  }
  if (r.has("std") && std::any_of(data.std.begin(), data.std.end(), [](double s) { return !(s > 0); }))
    r.invalid("std", "positive");
  if (const toml::table* aug = r.subtable("augment")) {
    TableReader a(r.context(), *aug, "data.augment", recipe_keys::augment);
    data.augment.random_crop_padding = a.integer_or("random_crop_padding", 0);
    data.augment.hflip = a.boolean_or("hflip", false);
    check_at_least<int64_t>(a, "random_crop_padding", data.augment.random_crop_padding, 0);
  }
  data.labelled_per_class = r.integer_or("labelled_per_class", data.labelled_per_class);
  data.val_size = r.integer_or("val_size", data.val_size);
  data.train_subset = r.integer_or("train_subset", data.train_subset);
  data.workers = r.integer_or("workers", data.workers);
  data.extra_unlabelled_folder = r.string_or("extra_unlabelled_folder", "");
  check_at_least<int64_t>(r, "labelled_per_class", data.labelled_per_class, 0);
  check_at_least<int64_t>(r, "val_size", data.val_size, 0);
  check_at_least<int64_t>(r, "train_subset", data.train_subset, 0);
  check_at_least<int64_t>(r, "workers", data.workers, 0);
  return data;
}

ModelSpec parse_model(TableReader r, const std::string& name, ParseContext& ctx) {
  ModelSpec m;
  m.name = name;
  m.pos.line = ctx.line(&r.table());
  if (r.require("arch")) m.arch = r.string_or("arch", "");
  const auto archs = registered_model_archs();
  if (!archs.empty() && r.has("arch") && r.node("arch")->is_string() &&
      std::find(archs.begin(), archs.end(), m.arch) == archs.end())
    ctx.error(r.node("arch"), fmt::format("unknown arch '{}' in [{}]{}", m.arch, r.display(),
                                          suggestion_suffix(m.arch, archs, "architectures")));
  m.weights = r.string_or("weights", "");
  m.from_stage = r.string_or("from_stage", "");
  m.frozen = r.boolean_or("frozen", false);
  if (const toml::table* opts = r.subtable("options")) {
    for (auto&& [key, value] : *opts) {
      if (auto i = value.value_exact<int64_t>()) m.options[std::string(key.str())] = double(*i);
      else if (auto d = value.value_exact<double>()) m.options[std::string(key.str())] = *d;
      else
        ctx.error(&value, fmt::format("key '{}' in [{}.options] must be a number, got {}", key.str(),
                                      r.display(), describe_node(value)));
    }
  }
  return m;
}

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
  term.weight = r.number_or("weight", 1.0);
  for (const ParamSpec& spec : schema->params) {
    if (r.has(spec.key)) {
      if (auto v = r.param(spec.key, spec.kind)) term.params[spec.key] = LossParam{*v, {r.line(spec.key)}};
    } else if (spec.required) {
      r.require(spec.key);
    } else if (spec.default_value) {
      term.params[spec.key] = LossParam{*spec.default_value, {}};
    }
  }
  return term;
}

StageSpec parse_stage(TableReader r, size_t index, ParseContext& ctx) {
  StageSpec s;
  s.pos.line = ctx.line(&r.table());
  s.name = r.string_or("name", fmt::format("stage{}", index));
  if (r.require("train")) s.train = r.string_or("train", "");
  s.teachers = r.strings("teachers").value_or(std::vector<std::string>{});
  if (r.require("epochs")) s.epochs = r.integer_or("epochs", 1);
  s.batch_size = r.integer_or("batch_size", s.batch_size);
  s.eval_every = r.integer_or("eval_every", s.eval_every);
  check_at_least<int64_t>(r, "epochs", s.epochs, 1);
  check_at_least<int64_t>(r, "batch_size", s.batch_size, 1);
  check_at_least<int64_t>(r, "eval_every", s.eval_every, 1);
  static const toml::table empty;
  const toml::table* opt = r.subtable("optimizer");
  s.optimizer = parse_optimizer(TableReader(ctx, opt ? *opt : empty, "stages.optimizer", recipe_keys::optimizer));
  const toml::table* sch = r.subtable("schedule");
  s.schedule = parse_schedule(TableReader(ctx, sch ? *sch : empty, "stages.schedule", recipe_keys::schedule));
  s.clip_grad_norm = r.number_or("clip_grad_norm", 0);
  if (r.has("clip_grad_norm") && !(s.clip_grad_norm >= 0)) r.invalid("clip_grad_norm", "at least 0 (0 = off)");
  if (auto d = r.choice("data", {"labelled", "unlabelled", "all", "pool"}))
    s.data = *d == "labelled"     ? StageData::labelled
             : *d == "unlabelled" ? StageData::unlabelled
             : *d == "pool"       ? StageData::pool
                                  : StageData::all;
  if (auto t = r.choice("trainable", {"all", "head"})) s.trainable = *t == "head" ? Trainable::head : Trainable::all;
  s.reset_head = r.boolean_or("reset_head", false);
  s.retrieve_k = r.integer_or("retrieve_k", 0);
  check_at_least<int64_t>(r, "retrieve_k", s.retrieve_k, 0);
  s.retrieve_with = r.string_or("retrieve_with", "");
  s.retrieve_tap = r.string_or("retrieve_tap", s.retrieve_tap);
  if (auto c = r.choice("teacher_cache", {"auto", "off", "memory", "file"}))
    s.teacher_cache = *c == "off" ? TeacherCache::off : *c == "memory" ? TeacherCache::memory
                      : *c == "file" ? TeacherCache::file : TeacherCache::auto_;
  if (const toml::array* losses = r.array("losses")) {
    if (losses->empty()) r.invalid("losses", "a non-empty array of loss terms");
    for (const auto& node : *losses) s.losses.push_back(parse_loss(node, ctx));
  } else if (!r.has("losses")) {
    LossTerm ce{"ce", 1.0, {}, {}};  // default: plain cross-entropy with the registered defaults
    if (const LossSchema* schema = find_loss_schema("ce"))
      for (const auto& p : schema->params)
        if (p.default_value) ce.params[p.key] = LossParam{*p.default_value, {}};
    s.losses.push_back(std::move(ce));
  }
  return s;
}

}  // namespace

Recipe parse_tree(const toml::table& root, ParseContext& ctx, const std::string& default_name) {
  Recipe recipe;
  TableReader top(ctx, root, "root", recipe_keys::root);
  static const toml::table empty;
  const toml::table* run = top.subtable("run");
  recipe.run = parse_run(TableReader(ctx, run ? *run : empty, "run", recipe_keys::run), default_name);
  const toml::table* data = top.subtable("data");
  recipe.data = parse_data(TableReader(ctx, data ? *data : empty, "data", recipe_keys::data));
  if (const toml::table* models = top.subtable("models")) {
    for (auto&& [key, value] : *models) {
      const std::string name(key.str());
      if (const toml::table* t = value.as_table())
        recipe.models[name] = parse_model(TableReader(ctx, *t, "models." + name, recipe_keys::model), name, ctx);
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
        recipe.stages.push_back(parse_stage(TableReader(ctx, *t, "stages", recipe_keys::stage), i, ctx));
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
