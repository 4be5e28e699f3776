// `--set key=value` overrides: a dotted path into the recipe tree ("stages.0.epochs",
// "models.teacher.arch", "stages.distill.losses.kd.T") and a value parsed as TOML, or kept
// as a bare string when it is not TOML. Applied to the TOML tree before validation; every
// path segment is checked against the recipe's key sets, so a typo names the nearest key.
// Values carry the source path "--set <assignment>", which error messages print.
#include <algorithm>
#include <sstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"
#include "train/recipe_internal.h"

namespace retort::recipe_detail {
namespace {

enum class Where { root, run, data, augment, models, model, options, stages, stage, optimizer, schedule, losses, loss };

struct Level {
  toml::node* node;
  Where where;
  std::string display;         // table name for messages
  std::string loss_name;       // for Where::loss
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> keys_of(const Level& level) {
  switch (level.where) {
    case Where::root: return recipe_keys::root();
    case Where::run: return recipe_keys::run();
    case Where::data: return recipe_keys::data();
    case Where::augment: return recipe_keys::augment();
    case Where::model: return recipe_keys::model();
    case Where::stage: return recipe_keys::stage();
    case Where::optimizer: return recipe_keys::optimizer();
    case Where::schedule: return recipe_keys::schedule();
    case Where::loss: return recipe_keys::loss(level.loss_name);
    case Where::models: {
      std::vector<std::string> names;
      for (auto&& [k, v] : *level.node->as_table()) names.emplace_back(k.str());
      return names;
    }
    default: return {};
  }
}

// Keys whose value is text: a value like 2026 or true given for them stays a string.
bool is_text_key(const Level& level, const std::string& key) {
  static const std::vector<std::pair<Where, std::string>> text_keys = {
      {Where::run, "name"},       {Where::run, "device"},          {Where::run, "out_dir"},
      {Where::data, "dataset"},   {Where::data, "root"},           {Where::data, "extra_unlabelled_folder"},
      {Where::model, "arch"},     {Where::model, "weights"},       {Where::model, "from_stage"},
      {Where::model, "init_from"}, {Where::model, "head"},       {Where::data, "interpolation"},
      {Where::stage, "keep"},
      {Where::stage, "name"},     {Where::stage, "train"},         {Where::stage, "data"},
      {Where::stage, "trainable"}, {Where::stage, "retrieve_with"}, {Where::stage, "retrieve_tap"},
      {Where::stage, "teacher_cache"}, {Where::stage, "batch_norm"},
      {Where::optimizer, "type"}, {Where::schedule, "type"},       {Where::loss, "name"}};
  for (const auto& [w, k] : text_keys)
    if (w == level.where && k == key) return true;
  if (level.where == Where::loss)
    if (const LossSchema* s = find_loss_schema(level.loss_name))
      if (const ParamSpec* p = s->find(key)) return p->kind == ValueKind::string || p->kind == ValueKind::model;
  return false;
}

// Keys whose value is a list of names: a bare "a,b" becomes ["a", "b"].
bool is_name_list_key(const Level& level, const std::string& key) {
  if (level.where == Where::stage) return key == "teachers";
  if (level.where == Where::loss)
    if (const LossSchema* s = find_loss_schema(level.loss_name))
      if (const ParamSpec* p = s->find(key)) return p->kind == ValueKind::strings || p->kind == ValueKind::models;
  return false;
}

Where child_where(Where parent, const std::string& key) {
  switch (parent) {
    case Where::root:
      return key == "run" ? Where::run : key == "data" ? Where::data : key == "models" ? Where::models : Where::stages;
    case Where::data: return key == "augment" ? Where::augment : Where::data;
    case Where::model: return key == "options" ? Where::options : Where::model;
    case Where::stage:
      return key == "optimizer" ? Where::optimizer : key == "schedule" ? Where::schedule
             : key == "losses"  ? Where::losses
                                : Where::stage;
    default: return parent;
  }
}

bool holds_table(Where w) {
  return w != Where::stages && w != Where::losses;
}

// Index of an array element named by number or by its `name` (stages: default "stage<i>").
size_t element_index(const std::string& assignment, const Level& level, const std::string& seg) {
  const toml::array& arr = *level.node->as_array();
  const bool stages = level.where == Where::stages;
  std::vector<std::string> names;
  for (size_t i = 0; i < arr.size(); ++i) {
    const toml::table* t = arr.get(i)->as_table();
    auto name = t && t->get("name") ? t->get("name")->value_exact<std::string>() : std::nullopt;
    names.push_back(name ? *name : stages ? fmt::format("stage{}", i) : std::string());
  }
  if (is_index(seg)) {
    size_t i = std::stoul(seg);
    if (i < arr.size()) return i;
    fail("--set {}: index {} is out of range: [{}] has {} entries (0 to {})", assignment, seg, level.display,
         arr.size(), int64_t(arr.size()) - 1);
  }
  size_t found = arr.size();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != seg) continue;
    if (found != arr.size())
      fail("--set {}: more than one entry of [{}] is named '{}'; use its index", assignment, level.display, seg);
    found = i;
  }
  if (found != arr.size()) return found;
  fail("--set {}: [{}] has no entry '{}' (use an index 0 to {} or a name){}", assignment, level.display, seg,
       int64_t(arr.size()) - 1, suggestion_suffix(seg, names, "names"));
}

std::string quote(const std::string& text) {
  std::ostringstream quoted;
  quoted << toml::value<std::string>(text);
  return quoted.str();
}

// The value text as a TOML node whose source path is "--set <assignment>". Text that is not
// TOML is a bare string (or, for name lists, comma-separated names); text keys keep their
// text even when it looks like a number.
toml::table parse_value(const std::string& assignment, const std::string& text, bool text_key, bool name_list) {
  const std::string source = "--set " + assignment;
  try {
    toml::table parsed = toml::parse("v = " + text, source);
    if (parsed.size() == 1 && parsed.contains("v") && (!text_key || parsed.get("v")->is_string())) return parsed;
  } catch (const toml::parse_error&) {
  }
  if (name_list) {
    std::string items;
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string::npos) comma = text.size();
      std::string item = text.substr(start, comma - start);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!item.empty()) items += (items.empty() ? "" : ", ") + quote(item);
      start = comma + 1;
    }
    return toml::parse("v = [" + items + "]", source);
  }
  return toml::parse("v = " + quote(text), source);
}

}  // namespace

void apply_override(toml::table& root, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set expects key=value (e.g. stages.0.epochs=3), got '{}'", assignment);
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  const std::vector<std::string> segs = split_path(path);

  Level level{&root, Where::root, "root", ""};
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& seg = segs[i];
    const bool last = i + 1 == segs.size();
    if (seg.empty()) fail("--set {}: empty key in path '{}'", assignment, path);

    if (level.where == Where::stages || level.where == Where::losses) {  // arrays of tables
      size_t idx = element_index(assignment, level, seg);
      toml::array& arr = *level.node->as_array();
      if (last) {
        toml::table value = parse_value(assignment, text, false, false);
        RETORT_CHECK(value.get("v")->is_table(), "--set {}: an entry of [{}] must be set to a table {{...}}",
                     assignment, level.display);
        arr.erase(arr.begin() + long(idx));
        arr.insert(arr.begin() + long(idx), std::move(*value.get("v")));
        return;
      }
      toml::table* element = arr.get(idx)->as_table();
      RETORT_CHECK(element != nullptr, "--set {}: entry {} of [{}] is not a table", assignment, idx, level.display);
      if (level.where == Where::stages) {
        level = Level{element, Where::stage, "stages", ""};
      } else {
        auto name = element->get("name") ? element->get("name")->value_exact<std::string>() : std::nullopt;
        level = Level{element, Where::loss, "stages.losses." + name.value_or("?"), name.value_or("")};
      }
      continue;
    }

    toml::table& table = *level.node->as_table();
    const std::vector<std::string> keys = keys_of(level);
    const bool free_keys = level.where == Where::options || (level.where == Where::models && last);
    if (!free_keys && std::find(keys.begin(), keys.end(), seg) == keys.end()) {
      if (level.where == Where::models)
        fail("--set {}: the recipe has no model '{}'{}", assignment, seg, suggestion_suffix(seg, keys, "models"));
      fail("--set {}: unknown key '{}' in [{}]{}", assignment, seg, level.display, suggestion_suffix(seg, keys));
    }
    if (last) {
      toml::table value = parse_value(assignment, text, is_text_key(level, seg), is_name_list_key(level, seg));
      table.insert_or_assign(seg, std::move(*value.get("v")));
      return;
    }
    const Where next = level.where == Where::models ? Where::model : child_where(level.where, seg);
    const bool container = next != level.where || level.where == Where::models;
    if (!container)
      fail("--set {}: '{}' in [{}] is a value, not a table; set it directly: {}=...", assignment, seg, level.display,
           fmt::join(std::vector<std::string>(segs.begin(), segs.begin() + long(i) + 1), "."));
    toml::node* child = table.get(seg);
    if (!child) {
      if (next == Where::stages || next == Where::losses)
        fail("--set {}: the recipe has no '{}' array to index; set the whole array instead", assignment, seg);
      child = table.insert_or_assign(seg, toml::table{}).first->second.as_table();
    }
    if (holds_table(next) ? !child->is_table() : !child->is_array())
      fail("--set {}: '{}' in [{}] is not a {}", assignment, seg, level.display,
           holds_table(next) ? "table" : "array");
    std::string display = next == Where::model ? "models." + seg
                          : level.where == Where::root ? seg
                                                       : level.display + "." + seg;
    level = Level{child, next, display, ""};
  }
}

}  // namespace retort::recipe_detail
