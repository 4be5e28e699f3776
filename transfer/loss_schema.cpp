// Loss parameter kinds and values, the schema registry and the checked arguments of a loss term
// (see transfer/loss_schema.h).
#include "transfer/loss_schema.h"
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"
#include "transfer/loss_term.h"

namespace retort {

const char* describe_kind(ValueKind kind) {
  switch (kind) {
    case ValueKind::number: return "a number";
    case ValueKind::integer: return "an integer";
    case ValueKind::boolean: return "a boolean";
    case ValueKind::string: return "a string";
    case ValueKind::model: return "a string naming a model";
    case ValueKind::models: return "an array of model names";
    case ValueKind::numbers: return "an array of numbers";
    case ValueKind::strings: return "an array of strings";
  }
  return "?";
}

std::optional<ParamValue> coerce_param(const ParamValue& value, ValueKind kind) {
  switch (kind) {
    case ValueKind::number:
      if (auto* d = std::get_if<double>(&value)) return *d;
      if (auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
      return std::nullopt;
    case ValueKind::integer:
      if (std::holds_alternative<int64_t>(value)) return value;
      return std::nullopt;
    case ValueKind::boolean:
      if (std::holds_alternative<bool>(value)) return value;
      return std::nullopt;
    case ValueKind::string:
    case ValueKind::model:
      if (std::holds_alternative<std::string>(value)) return value;
      return std::nullopt;
    case ValueKind::models:
    case ValueKind::strings:
      if (std::holds_alternative<std::vector<std::string>>(value)) return value;
      return std::nullopt;
    case ValueKind::numbers:
      if (std::holds_alternative<std::vector<double>>(value)) return value;
      return std::nullopt;
  }
  return std::nullopt;
}

// ---- ParamSpec ------------------------------------------------------------------------

ParamSpec::ParamSpec(std::string key_, ValueKind kind_, ParamValue default_value_, std::string help_)
    : key(std::move(key_)), kind(kind_), help(std::move(help_)) {
  auto coerced = coerce_param(default_value_, kind);
  RETORT_CHECK(coerced.has_value(), "loss parameter '{}': its default value is not {}", key,
               describe_kind(kind));
  default_value = std::move(coerced);
}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, RequiredTag, std::string help_)
    : key(std::move(key_)), kind(kind_), required(true), help(std::move(help_)) {}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, OptionalTag, std::string help_)
    : key(std::move(key_)), kind(kind_), help(std::move(help_)) {}
ParamSpec::ParamSpec(std::string key_, ValueKind kind_, const char* default_value_, std::string help_)
    : ParamSpec(std::move(key_), kind_, ParamValue(std::string(default_value_)), std::move(help_)) {}

namespace {
double as_number(const ParamValue& v) {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
  return NAN;
}
}  // namespace

ParamSpec ParamSpec::positive() && {
  valid = [](const ParamValue& v) { return as_number(v) > 0; };
  must_be = "positive";
  return std::move(*this);
}
ParamSpec ParamSpec::at_least(double lowest) && {
  valid = [lowest](const ParamValue& v) { return as_number(v) >= lowest; };
  must_be = fmt::format("at least {}", lowest);
  return std::move(*this);
}
ParamSpec ParamSpec::within(double lowest, double highest) && {
  valid = [lowest, highest](const ParamValue& v) { return as_number(v) >= lowest && as_number(v) <= highest; };
  must_be = fmt::format("in [{}, {}]", lowest, highest);
  return std::move(*this);
}
ParamSpec ParamSpec::one_of(std::vector<std::string> choices) && {
  must_be = fmt::format("one of \"{}\"", fmt::join(choices, "\", \""));
  valid = [choices = std::move(choices)](const ParamValue& v) {
    auto* s = std::get_if<std::string>(&v);
    return s && std::find(choices.begin(), choices.end(), *s) != choices.end();
  };
  return std::move(*this);
}

const ParamSpec* LossSchema::find(std::string_view key) const {
  for (const auto& p : params)
    if (p.key == key) return &p;
  return nullptr;
}

// ---- the schema registry --------------------------------------------------------------

namespace {
struct SchemaRegistry {
  std::mutex mutex;
  std::map<std::string, LossSchema, std::less<>> losses;
};
SchemaRegistry& schemas() {
  static SchemaRegistry r;
  return r;
}
}  // namespace

void register_loss_schema(std::string name, std::vector<ParamSpec> params, std::string help, double default_weight) {
  RETORT_CHECK(!name.empty(), "register_loss_schema: empty loss name");
  for (size_t i = 0; i < params.size(); ++i) {
    RETORT_CHECK(params[i].key != "name" && params[i].key != "weight",
                 "register_loss_schema('{}'): '{}' is a common key of every loss term", name, params[i].key);
    for (size_t j = 0; j < i; ++j)
      RETORT_CHECK(params[i].key != params[j].key, "register_loss_schema('{}'): key '{}' declared twice", name,
                   params[i].key);
  }
  auto& reg = schemas();
  std::lock_guard lock(reg.mutex);
  RETORT_CHECK(std::isfinite(default_weight), "register_loss_schema('{}'): the default weight is not finite", name);
  reg.losses[name] = LossSchema{name, std::move(params), std::move(help), default_weight};
}

const LossSchema* find_loss_schema(std::string_view name) {
  transfer::register_builtin_losses();  // idempotent
  auto& reg = schemas();
  std::lock_guard lock(reg.mutex);
  auto it = reg.losses.find(name);
  return it == reg.losses.end() ? nullptr : &it->second;  // map nodes are stable
}

std::vector<std::string> registered_losses() {
  transfer::register_builtin_losses();  // idempotent
  auto& reg = schemas();
  std::lock_guard lock(reg.mutex);
  std::vector<std::string> names;
  for (const auto& [n, s] : reg.losses) names.push_back(n);
  return names;
}

std::string param_to_toml(const ParamValue& value) {
  auto num = [](double d) {
    std::string t = fmt::format("{}", d);
    if (t.find_first_of(".eni") == std::string::npos) t += ".0";
    return t;
  };
  auto quoted = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') out += '\\', out += char(c);
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04X}", c);
      else out += char(c);
    }
    return out + "\"";
  };
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, int64_t>) return fmt::format("{}", v);
        else if constexpr (std::is_same_v<T, double>) return num(v);
        else if constexpr (std::is_same_v<T, std::string>) return quoted(v);
        else {
          std::string out = "[";
          for (size_t i = 0; i < v.size(); ++i) {
            if (i) out += ", ";
            if constexpr (std::is_same_v<T, std::vector<double>>) out += num(v[i]);
            else out += quoted(v[i]);
          }
          return out + "]";
        }
      },
      value);
}

std::string describe_loss_schemas() {
  std::string out;
  for (const auto& name : registered_losses()) {
    const LossSchema* s = find_loss_schema(name);
    out += fmt::format("{}{}{}\n", name, s->help.empty() ? "" : "  ", s->help);
    out += fmt::format("    {:<16} a number, default {}  the term's weight in the stage's sum\n", "weight",
                       param_to_toml(ParamValue(s->default_weight)));
    for (const auto& p : s->params) {
      std::string type = describe_kind(p.kind);
      type += p.required ? ", required" : p.default_value ? ", default " + param_to_toml(*p.default_value) : ", optional";
      if (!p.must_be.empty()) type += ", " + p.must_be;
      out += fmt::format("    {:<16} {}{}{}\n", p.key, type, p.help.empty() ? "" : "  ", p.help);
    }
  }
  return out;
}

// ---- LossArgs -------------------------------------------------------------------------

namespace {
template <typename T>
const T& loss_param(const LossArgs& args, std::string_view key, const char* expected) {
  auto it = args.params.find(std::string(key));
  if (it == args.params.end()) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : args.params) keys.push_back(k);
    fail("{}: loss '{}' has no parameter '{}' (it has: {})", args.where, args.name, key, fmt::join(keys, ", "));
  }
  const T* v = std::get_if<T>(&it->second);
  RETORT_CHECK(v != nullptr, "{}: loss '{}' parameter '{}' is not {}", args.where, args.name, key, expected);
  return *v;
}
}  // namespace

bool LossArgs::has(std::string_view key) const { return params.count(std::string(key)) > 0; }
double LossArgs::number(std::string_view key) const { return loss_param<double>(*this, key, "a number"); }
int64_t LossArgs::integer(std::string_view key) const { return loss_param<int64_t>(*this, key, "an integer"); }
bool LossArgs::boolean(std::string_view key) const { return loss_param<bool>(*this, key, "a boolean"); }
const std::string& LossArgs::string(std::string_view key) const {
  return loss_param<std::string>(*this, key, "a string");
}
const std::vector<double>& LossArgs::numbers(std::string_view key) const {
  return loss_param<std::vector<double>>(*this, key, "an array of numbers");
}
const std::vector<std::string>& LossArgs::strings(std::string_view key) const {
  return loss_param<std::vector<std::string>>(*this, key, "an array of strings");
}

}  // namespace retort
