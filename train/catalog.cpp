// Built-in recipe discovery and name resolution.
#include "train/catalog.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <fmt/format.h>
#include "engine/error.h"
#include "train/recipe_schema.h"

#ifndef RETORT_SOURCE_DIR
#define RETORT_SOURCE_DIR "."
#endif

namespace retort {

namespace fs = std::filesystem;

fs::path builtin_recipe_dir() {
  if (const char* env = std::getenv("RETORT_RECIPE_DIR"); env && *env) return env;
  return fs::path(RETORT_SOURCE_DIR) / "recipes";
}

namespace {
std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}
}  // namespace

std::string recipe_description(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (t[0] != '#') return "";
    const size_t body = t.find_first_not_of('#');
    const std::string text = body == std::string::npos ? "" : trim(t.substr(body));
    if (!text.empty()) return text;
  }
  return "";
}

std::vector<RecipeInfo> list_recipes(const fs::path& dir) {
  std::vector<RecipeInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".toml") continue;
    out.push_back({entry.path().stem().string(), entry.path(), recipe_description(entry.path())});
  }
  std::sort(out.begin(), out.end(), [](const RecipeInfo& a, const RecipeInfo& b) { return a.name < b.name; });
  return out;
}

fs::path resolve_recipe(const std::string& name_or_path, const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  std::string name = name_or_path;
  if (name.size() > 5 && name.ends_with(".toml")) name.resize(name.size() - 5);
  std::vector<std::string> names;
  for (const auto& info : list_recipes(dir)) {
    if (info.name == name) return info.path;
    names.push_back(info.name);
  }
  fail("no recipe file '{}' and no built-in recipe '{}' in {}{}", name_or_path, name, dir.string(),
       suggestion_suffix(name, names, "recipes"));
}

std::string format_recipe_list(const std::vector<RecipeInfo>& recipes) {
  size_t width = 0;
  for (const auto& r : recipes) width = std::max(width, r.name.size());
  std::string out;
  for (const auto& r : recipes) out += fmt::format("{:<{}}  {}\n", r.name, width, r.description);
  return out;
}

}  // namespace retort
