// What a recipe may say: the allowed keys of every recipe table, the per-loss parameter
// schemas that transfer methods register, the optional registry of model architectures,
// and the "did you mean" key suggestions used by every recipe error message.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace retort {

// The type a recipe value must have. `model` is a string naming a model of the recipe,
// `models` a list of such names; both are checked as references.
enum class ValueKind { number, integer, boolean, string, model, models, numbers, strings };

// "a number", "an integer", ... for error messages.
const char* describe_kind(ValueKind kind);

// A loss parameter value. Numbers are doubles, integers int64, model names strings.
using ParamValue =
    std::variant<bool, int64_t, double, std::string, std::vector<double>, std::vector<std::string>>;

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

  ParamSpec(std::string key, ValueKind kind, ParamValue default_value, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, RequiredTag, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, OptionalTag, std::string help = "");
  ParamSpec(std::string key, ValueKind kind, const char* default_value, std::string help = "");
};

struct LossSchema {
  std::string name;
  std::vector<ParamSpec> params;
  std::string help;
  const ParamSpec* find(std::string_view key) const;
};

// Registers (or replaces) the schema of a loss term kind. Every loss term also has the
// common keys `name` and `weight` (default 1.0); a schema must not redeclare them.
// "ce" and "kd" are registered from the start; transfer methods register their own.
void register_loss_schema(std::string name, std::vector<ParamSpec> params, std::string help = "");
const LossSchema* find_loss_schema(std::string_view name);
std::vector<std::string> registered_losses();  // sorted

// Every registered loss with its keys, types, defaults and help, for `retort list losses`:
//   kd  Hinton KD: ...
//       T        number, default 4.0   softmax temperature
std::string describe_loss_schemas();
// A parameter value as TOML text ("4.0", "\"mse\"", "[1, 2]").
std::string param_to_toml(const ParamValue& value);

// Model architectures known to the model registry. While none are registered, recipes may
// name any architecture; once some are, an unknown `arch` is an error with a suggestion.
void register_model_arch(std::string name);
std::vector<std::string> registered_model_archs();  // sorted

// Converts a value to `kind` where that is lossless (integer -> number); nullopt otherwise.
std::optional<ParamValue> coerce_param(const ParamValue& value, ValueKind kind);

// The fixed key sets of the recipe's tables.
namespace recipe_keys {
extern const std::vector<std::string> root;       // run, data, models, stages
extern const std::vector<std::string> run;
extern const std::vector<std::string> data;
extern const std::vector<std::string> augment;
extern const std::vector<std::string> model;
extern const std::vector<std::string> stage;
extern const std::vector<std::string> optimizer;  // union over optimizer types
extern const std::vector<std::string> schedule;   // union over schedule types
extern const std::vector<std::string> loss_common;  // name, weight
// The keys a loss term of this kind accepts (common keys + its schema; common only when
// the kind is not registered).
std::vector<std::string> loss(std::string_view loss_name);
}  // namespace recipe_keys

// Nearest candidate to `key` by edit distance (case-insensitive, with common synonyms such
// as learning_rate -> lr, temperature -> T), or nullopt when nothing is close.
std::optional<std::string> nearest_key(std::string_view key, const std::vector<std::string>& candidates);
// "; did you mean 'lr'?" or "; valid keys: a, b, c" (or "; nothing is defined").
std::string suggestion_suffix(std::string_view key, const std::vector<std::string>& candidates,
                              std::string_view what = "keys");
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace retort
