// Internal steps of recipe loading, shared by recipe.cpp, recipe_parse.cpp,
// recipe_validate.cpp and recipe_overrides.cpp. Not for use outside train/.
#pragma once
#include <string>
#include <vector>
#include <toml++/toml.h>
#include "train/recipe.h"
#include "train/recipe_reader.h"

namespace retort::recipe_detail {

// Builds the typed recipe from the (overridden) TOML tree: key sets, types, ranges and
// defaults. Problems are recorded in ctx.
Recipe parse_tree(const toml::table& root, ParseContext& ctx, const std::string& default_name);

// The defaults a dataset gives [data] (root nullptr: the recipe must say).
struct DatasetDefaults {
  const char* root;
  int64_t image_size;
  int64_t channels;
  std::vector<double> mean, std;
};
DatasetDefaults dataset_defaults(DatasetKind kind);

// The inline tables of a stage that are not field tables: the optimizer and schedule (their
// keys depend on their type) and the loss terms (their keys come from each loss's schema).
OptimizerSettings parse_optimizer(TableReader r);
ScheduleSettings parse_schedule(TableReader r);
LossTerm parse_loss(const toml::node& node, ParseContext& ctx);
LossTerm default_loss_term();  // plain cross-entropy with its schema's defaults
std::string optimizer_toml(const OptimizerSettings& o);
std::string schedule_toml(const ScheduleSettings& s);
std::string loss_toml(const LossTerm& term);

// The optimizer's and schedule's keys, documented (the key reference; their key sets).
struct KeyDoc {
  std::string key, kind, default_text, help;
};
const std::vector<KeyDoc>& optimizer_key_docs();
const std::vector<KeyDoc>& schedule_key_docs();

// Cross-references: stage.train, teachers, loss model keys, from_stage, unique names.
void validate_references(const Recipe& recipe, const toml::table& root, ParseContext& ctx);

// Applies one "a.b.c=value" to the tree; throws Error naming the bad path and suggesting
// the nearest valid key.
void apply_override(toml::table& root, const std::string& assignment);

}  // namespace retort::recipe_detail
