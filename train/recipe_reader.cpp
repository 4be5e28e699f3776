// ParseContext and TableReader: typed, located reads of recipe tables.
#include "train/recipe_reader.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"

namespace retort {

// ---- ParseContext ---------------------------------------------------------------------

std::string ParseContext::where(const toml::node* node) const {
  if (node) {
    const auto& src = node->source();
    if (src.path && !src.path->empty() && *src.path != file_) return *src.path;  // "--set ..."
    if (src.begin.line > 0) return fmt::format("{}:{}", file_, src.begin.line);
  }
  return file_;
}

int ParseContext::line(const toml::node* node) const {
  if (!node) return 0;
  const auto& src = node->source();
  if (src.path && !src.path->empty() && *src.path != file_) return 0;
  return static_cast<int>(src.begin.line);
}

void ParseContext::error(const toml::node* at, const std::string& message) {
  errors_.push_back(fmt::format("{}: {}", where(at), message));
}

void ParseContext::throw_if_errors() const {
  if (errors_.empty()) return;
  throw Error(fmt::format("{}", fmt::join(errors_, "\n")));
}

std::string describe_node(const toml::node& node) {
  std::ostringstream os;
  switch (node.type()) {
    case toml::node_type::integer: os << "integer " << *node.as_integer(); break;
    case toml::node_type::floating_point: os << "number " << *node.as_floating_point(); break;
    case toml::node_type::boolean: os << "boolean " << (node.as_boolean()->get() ? "true" : "false"); break;
    case toml::node_type::string: os << "string \"" << node.as_string()->get() << '"'; break;
    case toml::node_type::array: os << "array " << *node.as_array(); break;
    case toml::node_type::table: os << "a table"; break;
    default: os << "a date/time"; break;
  }
  std::string s = os.str();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// ---- TableReader ----------------------------------------------------------------------

TableReader::TableReader(ParseContext& ctx, const toml::table& table, std::string display,
                         const std::vector<std::string>& allowed)
    : ctx_(ctx), table_(table), display_(std::move(display)) {
  for (auto&& [key, value] : table_) {
    const std::string k(key.str());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    ctx_.error(&value, fmt::format("unknown key '{}' in [{}]{}", k, display_, suggestion_suffix(k, allowed)));
  }
}

int TableReader::line(std::string_view key) const {
  const toml::node* n = table_.get(key);
  int l = ctx_.line(n ? n : &table_);
  return l > 0 ? l : ctx_.line(&table_);
}

void TableReader::type_error(std::string_view key, const char* expected) {
  const toml::node* n = table_.get(key);
  ctx_.error(n, fmt::format("key '{}' in [{}] must be {}, got {}", key, display_, expected, describe_node(*n)));
}

void TableReader::invalid(std::string_view key, const std::string& what) {
  const toml::node* n = table_.get(key);
  ctx_.error(n ? n : &table_, fmt::format("key '{}' in [{}] must be {}{}", key, display_, what,
                                          n ? ", got " + describe_node(*n) : std::string()));
}

std::optional<int64_t> TableReader::integer(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (auto v = n->value_exact<int64_t>()) return *v;
  type_error(key, describe_kind(ValueKind::integer));
  return std::nullopt;
}

std::optional<double> TableReader::number(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (auto i = n->value_exact<int64_t>()) return static_cast<double>(*i);
  if (auto d = n->value_exact<double>()) {
    if (std::isfinite(*d)) return *d;
    type_error(key, "a finite number");  // TOML allows inf and nan; no setting does
    return std::nullopt;
  }
  type_error(key, describe_kind(ValueKind::number));
  return std::nullopt;
}

std::optional<bool> TableReader::boolean(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (auto b = n->value_exact<bool>()) return *b;
  type_error(key, describe_kind(ValueKind::boolean));
  return std::nullopt;
}

std::optional<std::string> TableReader::string(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (auto s = n->value_exact<std::string>()) return *s;
  type_error(key, describe_kind(ValueKind::string));
  return std::nullopt;
}

std::optional<std::vector<double>> TableReader::numbers(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (const toml::array* a = n->as_array()) {
    std::vector<double> out;
    bool ok = true, finite = true;
    for (const auto& e : *a) {
      if (auto i = e.value_exact<int64_t>()) out.push_back(static_cast<double>(*i));
      else if (auto d = e.value_exact<double>()) out.push_back(*d), finite = finite && std::isfinite(*d);
      else ok = false;
    }
    if (ok && finite) return out;
    if (ok) {
      type_error(key, "an array of finite numbers");
      return std::nullopt;
    }
  }
  type_error(key, describe_kind(ValueKind::numbers));
  return std::nullopt;
}

std::optional<std::vector<int64_t>> TableReader::integers(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (const toml::array* a = n->as_array()) {
    std::vector<int64_t> out;
    bool ok = true;
    for (const auto& e : *a) {
      if (auto i = e.value_exact<int64_t>()) out.push_back(*i);
      else ok = false;
    }
    if (ok) return out;
  }
  type_error(key, "an array of integers");
  return std::nullopt;
}

std::optional<std::vector<std::string>> TableReader::strings(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  if (const toml::array* a = n->as_array()) {
    std::vector<std::string> out;
    bool ok = true;
    for (const auto& e : *a) {
      if (auto s = e.value_exact<std::string>()) out.push_back(*s);
      else ok = false;
    }
    if (ok) return out;
  }
  type_error(key, describe_kind(ValueKind::strings));
  return std::nullopt;
}

const toml::table* TableReader::subtable(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return nullptr;
  if (const toml::table* t = n->as_table()) return t;
  type_error(key, "a table");
  return nullptr;
}

const toml::array* TableReader::array(std::string_view key) {
  const toml::node* n = table_.get(key);
  if (!n) return nullptr;
  if (const toml::array* a = n->as_array()) return a;
  type_error(key, "an array");
  return nullptr;
}

bool TableReader::require(std::string_view key) {
  if (table_.contains(key)) return true;
  ctx_.error(&table_, fmt::format("missing required key '{}' in [{}]", key, display_));
  return false;
}

std::optional<std::string> TableReader::choice(std::string_view key, const std::vector<std::string>& choices) {
  auto s = string(key);
  if (!s) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *s) != choices.end()) return s;
  ctx_.error(table_.get(key), fmt::format("key '{}' in [{}] must be one of {}, got '{}'{}", key, display_,
                                          fmt::join(choices, ", "), *s, suggestion_suffix(*s, choices, "values")));
  return std::nullopt;
}

void TableReader::reject_keys(const std::vector<std::string>& keys, const std::string& what) {
  for (const auto& k : keys)
    if (const toml::node* n = table_.get(k))
      ctx_.error(n, fmt::format("key '{}' in [{}] is not used by {}", k, display_, what));
}

std::optional<ParamValue> TableReader::param(std::string_view key, ValueKind kind) {
  switch (kind) {
    case ValueKind::number:
      if (auto v = number(key)) return ParamValue(*v);
      return std::nullopt;
    case ValueKind::integer:
      if (auto v = integer(key)) return ParamValue(*v);
      return std::nullopt;
    case ValueKind::boolean:
      if (auto v = boolean(key)) return ParamValue(*v);
      return std::nullopt;
    case ValueKind::string:
      if (auto v = string(key)) return ParamValue(*v);
      return std::nullopt;
    case ValueKind::model: {
      const toml::node* n = table_.get(key);
      if (n && n->is_string()) return ParamValue(n->as_string()->get());
      if (n) type_error(key, describe_kind(kind));
      return std::nullopt;
    }
    case ValueKind::numbers:
      if (auto v = numbers(key)) return ParamValue(*v);
      return std::nullopt;
    case ValueKind::strings:
    case ValueKind::models: {
      const toml::node* n = table_.get(key);
      const toml::array* a = n ? n->as_array() : nullptr;
      if (a && (a->empty() || a->is_homogeneous(toml::node_type::string))) return ParamValue(*strings(key));
      if (n) type_error(key, describe_kind(kind));
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace retort
