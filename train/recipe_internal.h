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

// Cross-references: stage.train, teachers, loss model keys, from_stage, unique names.
void validate_references(const Recipe& recipe, const toml::table& root, ParseContext& ctx);

// Applies one "a.b.c=value" to the tree; throws Error naming the bad path and suggesting
// the nearest valid key.
void apply_override(toml::table& root, const std::string& assignment);

}  // namespace retort::recipe_detail
