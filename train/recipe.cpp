// Recipe loading entry points, enum names, LossTerm accessors and file checks.
#include "train/recipe.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"
#include "train/recipe_internal.h"

namespace retort {

const char* to_string(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::fashion_mnist: return "fashion-mnist";
    case DatasetKind::cifar10: return "cifar10";
    case DatasetKind::cifar100: return "cifar100";
    case DatasetKind::folder: return "folder";
  }
  return "?";
}
const char* to_string(OptimizerKind kind) { return kind == OptimizerKind::sgd ? "sgd" : "adamw"; }
const char* to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::multistep: return "multistep";
    case ScheduleKind::cosine: return "cosine";
    case ScheduleKind::constant: return "constant";
  }
  return "?";
}
const char* to_string(StageData kind) {
  switch (kind) {
    case StageData::labelled: return "labelled";
    case StageData::unlabelled: return "unlabelled";
    case StageData::all: return "all";
    case StageData::pool: return "pool";
  }
  return "?";
}

const char* to_string(Trainable kind) {
  switch (kind) {
    case Trainable::head: return "head";
    case Trainable::none: return "none";
    default: return "all";
  }
}

const char* to_string(TeacherInference kind) {
  switch (kind) {
    case TeacherInference::auto_: return "auto";
    case TeacherInference::folded: return "folded";
    case TeacherInference::as_is: return "as_is";
  }
  return "?";
}

const char* to_string(TeacherCache kind) {
  switch (kind) {
    case TeacherCache::auto_: return "auto";
    case TeacherCache::off: return "off";
    case TeacherCache::memory: return "memory";
    case TeacherCache::file: return "file";
  }
  return "?";
}

const char* to_string(BatchNormMode kind) { return kind == BatchNormMode::sync ? "sync" : "per_rank"; }
const char* to_string(KeepModel kind) { return kind == KeepModel::best ? "best" : "last"; }

// ---- LossTerm -> LossArgs ------------------------------------------------------------

LossArgs loss_args(const Recipe& recipe, const LossTerm& term) {
  LossArgs args;
  args.name = term.name;
  args.where = recipe.where(term.pos);
  for (const auto& [key, param] : term.params) args.params[key] = param.value;
  return args;
}

// ---- Recipe ---------------------------------------------------------------------------

const ModelSpec& Recipe::model(std::string_view name) const {
  auto it = models.find(std::string(name));
  if (it == models.end()) {
    std::vector<std::string> names;
    for (const auto& [n, m] : models) names.push_back(n);
    fail("recipe {} has no model '{}'{}", source, name, suggestion_suffix(name, names, "models"));
  }
  return it->second;
}

const StageSpec& Recipe::stage(std::string_view name) const {
  std::vector<std::string> names;
  for (const auto& s : stages) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  fail("recipe {} has no stage '{}'{}", source, name, suggestion_suffix(name, names, "stages"));
}

std::string Recipe::where(const SourcePos& pos) const {
  return pos.line > 0 ? fmt::format("{}:{}", source, pos.line) : source;
}

// ---- loading --------------------------------------------------------------------------

Recipe parse_recipe(std::string_view text, const std::string& source_name, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: TOML syntax error: {}", source_name, e.source().begin.line, e.source().begin.column,
         e.description());
  }
  for (const auto& assignment : overrides) recipe_detail::apply_override(root, assignment);
  ParseContext ctx(source_name);
  std::string default_name = std::filesystem::path(source_name).stem().string();
  if (default_name.empty()) default_name = "recipe";
  Recipe recipe = recipe_detail::parse_tree(root, ctx, default_name);
  if (ctx.ok()) recipe_detail::validate_references(recipe, root, ctx);
  ctx.throw_if_errors();
  recipe.source = source_name;
  return recipe;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read recipe '{}': {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_recipe(text.str(), path, overrides);
}

void check_recipe_files(const Recipe& recipe) {
  namespace fs = std::filesystem;
  std::vector<std::string> problems;
  if (!recipe.data.root.empty() && !fs::exists(recipe.data.root))
    problems.push_back(fmt::format("{}: [data] root '{}' does not exist", recipe.source, recipe.data.root));
  if (!recipe.data.extra_unlabelled_folder.empty() && !fs::is_directory(recipe.data.extra_unlabelled_folder))
    problems.push_back(fmt::format("{}: [data] extra_unlabelled_folder '{}' is not a directory", recipe.source,
                                   recipe.data.extra_unlabelled_folder));
  for (const auto& [name, m] : recipe.models)
    if (!m.weights.empty() && !fs::is_regular_file(m.weights))
      problems.push_back(fmt::format("{}: [models.{}] weights file '{}' does not exist", recipe.where(m.pos), name,
                                     m.weights));
  if (!problems.empty()) throw Error(fmt::format("{}", fmt::join(problems, "\n")));
}

}  // namespace retort
