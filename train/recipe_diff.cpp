// Key-by-key differences of two recipes, from their resolved TOML (see train/recipe_diff.h).
#include "train/recipe_diff.h"
#include <map>
#include <sstream>
#include <fmt/format.h>

namespace retort {
namespace {

// "table.key" (stages numbered "stages[i]") -> the value's TOML text, in file order.
std::vector<std::pair<std::string, std::string>> keyed_values(const Recipe& recipe) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(to_toml(recipe));
  std::string line, table;
  int stage = -1;
  bool in_array = false;  // inside a multi-line array value (a stage's losses)
  while (std::getline(in, line)) {
    if (in_array) {
      out.back().second += line == "]" ? "]" : " " + line.substr(line.find_first_not_of(' '));
      in_array = line != "]";
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    if (line == "[[stages]]") {
      table = fmt::format("stages[{}]", ++stage);
      continue;
    }
    if (line[0] == '[') {
      table = line.substr(1, line.size() - 2);
      continue;
    }
    const size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    out.push_back({table + "." + line.substr(0, eq), line.substr(eq + 3)});
    in_array = out.back().second == "[";
  }
  return out;
}

}  // namespace

std::vector<std::string> recipe_differences(const Recipe& before, const Recipe& after) {
  const auto a = keyed_values(before), b = keyed_values(after);
  std::map<std::string, std::string> old_values(a.begin(), a.end()), new_values(b.begin(), b.end());
  std::vector<std::string> out;
  for (const auto& [key, value] : b) {
    auto it = old_values.find(key);
    if (it == old_values.end()) out.push_back(fmt::format("{}: (absent) -> {}", key, value));
    else if (it->second != value) out.push_back(fmt::format("{}: {} -> {}", key, it->second, value));
  }
  for (const auto& [key, value] : a)
    if (!new_values.count(key)) out.push_back(fmt::format("{}: {} -> (absent)", key, value));
  return out;
}

}  // namespace retort
