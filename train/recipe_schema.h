// What a recipe may say: the allowed keys of every recipe table (a loss term's come from its
// schema, transfer/loss_schema.h), and the "did you mean" key suggestions used by every recipe
// error message.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include "transfer/loss_schema.h"

namespace retort {

// The key sets of the recipe's tables, from their field tables (train/recipe_fields.h) and key
// documentation, so the parser, --set and "did you mean" agree with what is documented.
namespace recipe_keys {
const std::vector<std::string>& root();       // run, data, models, stages
const std::vector<std::string>& run();
const std::vector<std::string>& data();
const std::vector<std::string>& augment();
const std::vector<std::string>& model();
const std::vector<std::string>& stage();
const std::vector<std::string>& optimizer();  // union over optimizer types
const std::vector<std::string>& schedule();   // union over schedule types
const std::vector<std::string>& loss_common();  // name, weight
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
