// Built-in recipes: the *.toml files in the source tree's recipes/ directory, each described
// by its first comment line (`retort list recipes`), and resolving `retort run NAME` to a file.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace retort {

struct RecipeInfo {
  std::string name;              // file stem: "kd-fashion-mnist"
  std::filesystem::path path;
  std::string description;       // first comment line, without '#'; "" when none
};

// RETORT_SOURCE_DIR/recipes, or $RETORT_RECIPE_DIR when set.
std::filesystem::path builtin_recipe_dir();
// The *.toml files of `dir`, sorted by name; empty when the directory does not exist.
std::vector<RecipeInfo> list_recipes(const std::filesystem::path& dir = builtin_recipe_dir());
// The first comment line of a recipe's leading comment block ("" when it starts otherwise).
std::string recipe_description(const std::filesystem::path& file);
// An existing file path as given, else the built-in recipe NAME (with or without .toml);
// otherwise an Error suggesting the nearest built-in name.
std::filesystem::path resolve_recipe(const std::string& name_or_path,
                                     const std::filesystem::path& dir = builtin_recipe_dir());
// Aligned "name  description" lines for `retort list recipes`.
std::string format_recipe_list(const std::vector<RecipeInfo>& recipes);

}  // namespace retort
