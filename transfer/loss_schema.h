// What a loss term may be given (transfer/): the parameter kinds and values, each loss's schema
// (keys, kinds, defaults, help), declared once where the loss is registered
// (transfer/loss_term.h: register_loss), and the checked arguments a loss is built from.
// The recipe reader (train/) validates a recipe's loss terms against these schemas; the
// losses read their LossArgs, which say where they were written for error messages.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace retort {

// The type a loss parameter must have. `model` is a string naming a model of the recipe,
// `models` a list of such names; both are checked as references.
enum class ValueKind { number, integer, boolean, string, model, models, numbers, strings };

// "a number", "an integer", ... for error messages.
const char* describe_kind(ValueKind kind);

// A loss parameter value. Numbers are doubles, integers int64, model names strings.
using ParamValue =
    std::variant<bool, int64_t, double, std::string, std::vector<double>, std::vector<std::string>>;

// Converts a value to `kind` where that is lossless (integer -> number); nullopt otherwise.
std::optional<ParamValue> coerce_param(const ParamValue& value, ValueKind kind);
// A parameter value as TOML text ("4.0", "\"mse\"", "[1, 2]").
std::string param_to_toml(const ParamValue& value);

// Tags for ParamSpec: a key that must be given, or one that may be absent (no default).
struct RequiredTag {};
struct OptionalTag {};
inline constexpr RequiredTag kRequired{};
inline constexpr OptionalTag kOptional{};

// One key of a loss term: {"T", ValueKind::number, 4.0} (default 4.0),
// {"teacher", ValueKind::model, kRequired}, {"layer", ValueKind::string, kOptional}.
struct ParamSpec {
  std::string key;
  ValueKind kind = ValueKind::number;
  std::optional<ParamValue> default_value;
  bool required = false;
  std::string help;

  // What a given value must also satisfy, checked by the recipe reader before anything runs
  // (unset: any value of the kind); `must_be` completes "key 'T' in [...] must be ...".
  std::function<bool(const ParamValue&)> valid;
  std::string must_be;

  ParamSpec(std::string key, ValueKind kind, ParamValue default_value, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, RequiredTag, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, OptionalTag, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, const char* default_value, std::string help = "");

  // Constraints, chained on the spec: ParamSpec("T", ValueKind::number, 4.0).positive().
  ParamSpec positive() &&;                                  // a number or integer > 0
  ParamSpec at_least(double lowest) &&;                     // a number or integer >= lowest
  ParamSpec within(double lowest, double highest) &&;       // a number in [lowest, highest]
  ParamSpec one_of(std::vector<std::string> choices) &&;    // a string among choices
};

struct LossSchema {
  std::string name;
  std::vector<ParamSpec> params;
  std::string help;
  double default_weight = 1.0;  // the term's `weight` when the recipe gives none
  const ParamSpec* find(std::string_view key) const;
};

// Registers (or replaces) the schema of a loss kind; register_loss does it with the factory.
// Every loss term also has the common keys `name` and `weight`; `weight` defaults to the
// method's own default (FitNets 100, AFT beta 10, ...) given here. A schema must not
// redeclare them.
void register_loss_schema(std::string name, std::vector<ParamSpec> params, std::string help = "",
                          double default_weight = 1.0);
// The schema of a loss kind (the built-in ones are registered on first use), or null.
const LossSchema* find_loss_schema(std::string_view name);
std::vector<std::string> registered_losses();  // sorted

// Every registered loss with its keys, types, defaults and help, for `retort list losses`:
//   kd  Hinton KD: ...
//       T        number, default 4.0   softmax temperature
std::string describe_loss_schemas();

// The checked arguments of one loss term: every key of its schema, defaults filled, and where
// the term was written ("recipes/x.toml:12"), which the loss's own errors name.
struct LossArgs {
  std::string name;   // the loss kind
  std::string where;  // for error messages
  std::map<std::string, ParamValue> params;

  bool has(std::string_view key) const;
  double number(std::string_view key) const;
  int64_t integer(std::string_view key) const;
  bool boolean(std::string_view key) const;
  const std::string& string(std::string_view key) const;  // string or model
  const std::vector<double>& numbers(std::string_view key) const;
  const std::vector<std::string>& strings(std::string_view key) const;  // strings or models
};

}  // namespace retort
