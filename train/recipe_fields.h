// The settings of a recipe's tables, one entry per key, declared once: how each is read (type,
// default, range or choices, whether it must be given), how it is written back into
// resolved.toml, and what it means. The parser (recipe_parse.cpp), the writer
// (recipe_writer.cpp), the allowed key sets (unknown-key errors, "did you mean", --set) and the
// key reference of docs/recipes.md (`retort list keys`) all come from these tables, so a new
// setting is one member in train/recipe.h and one entry in recipe_fields.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "train/recipe.h"
#include "train/recipe_reader.h"

namespace retort {

template <typename Settings>
struct RecipeField {
  std::string key;
  std::string kind;          // for the reference: "an integer >= 1", "\"sgd\" | \"adamw\"", ...
  std::string default_text;  // for the reference: "128", "required", "the file's stem", ...
  std::string help;
  std::function<void(TableReader&, Settings&)> read;   // reads (and checks) the key into Settings
  std::function<std::string(const Settings&)> write;  // the value as TOML text
};

const std::vector<RecipeField<RunSettings>>& run_fields();
const std::vector<RecipeField<DataSettings>>& data_fields();
const std::vector<RecipeField<AugmentSettings>>& augment_fields();
const std::vector<RecipeField<ModelSpec>>& model_fields();
const std::vector<RecipeField<StageSpec>>& stage_fields();

template <typename S>
std::vector<std::string> field_keys(const std::vector<RecipeField<S>>& fields) {
  std::vector<std::string> keys;
  for (const auto& f : fields) keys.push_back(f.key);
  return keys;
}
// Reads every field in table order (so errors come in a fixed order).
template <typename S>
void read_fields(const std::vector<RecipeField<S>>& fields, TableReader& r, S& settings) {
  for (const auto& f : fields) f.read(r, settings);
}
// "key = value\n" for every field.
template <typename S>
std::string write_fields(const std::vector<RecipeField<S>>& fields, const S& settings);

// TOML text of values (shortest round-trip digits for floats, "4.0" not "4").
std::string toml_string(const std::string& s);
std::string toml_number(double d);
std::string toml_integer(int64_t i);
std::string toml_bool(bool b);
std::string toml_key(const std::string& k);  // bare when TOML allows it, else quoted

// Every table's keys as Markdown (the key reference of docs/recipes.md).
std::string recipe_key_reference();

}  // namespace retort
