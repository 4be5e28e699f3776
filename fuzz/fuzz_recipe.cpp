// Fuzz target for the recipe reader: the input is recipe text, and each line that starts with
// "--set " is taken out of it and applied as an override (`retort run --set`). Parsing, the
// overrides, validation and writing the resolved recipe back run; what is accepted must write
// back to a recipe that parses to an equal one.
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>
#include "engine/error.h"
#include "fuzz/fuzz_targets.h"
#include "train/recipe.h"

namespace retort::fuzz {

Outcome recipe_input(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line, text;
  std::vector<std::string> overrides;
  while (std::getline(in, line)) {
    if (line.rfind("--set ", 0) == 0) overrides.push_back(line.substr(6));
    else text += line + "\n";
  }
  Recipe recipe;
  try {
    recipe = parse_recipe(text, "fuzz.toml", overrides);
  } catch (const Error& e) {
    return Outcome::reject(e.what());
  }
  if (!(parse_recipe(to_toml(recipe), "resolved.toml") == recipe)) std::abort();
  return Outcome::accept();
}

}  // namespace retort::fuzz

RETORT_FUZZ_TARGET(recipe_input)
