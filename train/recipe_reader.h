// Reading TOML tables with error reporting: a ParseContext collects every problem as
// "file:line: message" (or "--set path=value: message" for values an override put there: their
// TOML source path is that text, see recipe_overrides.cpp), and a
// TableReader checks a table's keys against its allowed set and reads typed values.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <toml++/toml.h>
#include "train/recipe_schema.h"

namespace retort {

class ParseContext {
 public:
  explicit ParseContext(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  // "file:line" for a node from the file, "--set a.b=v" for a node an override created.
  std::string where(const toml::node* node) const;
  int line(const toml::node* node) const;
  // Records "where(at): message"; a null `at` means the whole file.
  void error(const toml::node* at, const std::string& message);
  bool ok() const { return errors_.empty(); }
  const std::vector<std::string>& errors() const { return errors_; }
  // Throws one retort::Error with every message, one per line.
  void throw_if_errors() const;

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// "integer 3", "string \"abc\"", "table" ... for type errors.
std::string describe_node(const toml::node& node);

class TableReader {
 public:
  // Reports unknown keys of `table` at once. `display` names the table in messages
  // ("stages.optimizer" -> "[stages.optimizer]").
  TableReader(ParseContext& ctx, const toml::table& table, std::string display,
              const std::vector<std::string>& allowed);

  const toml::table& table() const { return table_; }
  const std::string& display() const { return display_; }
  ParseContext& context() { return ctx_; }
  bool has(std::string_view key) const { return table_.contains(key); }
  const toml::node* node(std::string_view key) const { return table_.get(key); }
  int line(std::string_view key) const;  // the key's value line, or the table's line

  // Typed reads: absent -> fallback (or nullopt); wrong type -> error recorded, fallback.
  std::optional<int64_t> integer(std::string_view key);
  std::optional<double> number(std::string_view key);
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::string> string(std::string_view key);
  std::optional<std::vector<double>> numbers(std::string_view key);
  std::optional<std::vector<int64_t>> integers(std::string_view key);
  std::optional<std::vector<std::string>> strings(std::string_view key);
  const toml::table* subtable(std::string_view key);  // inline or standard table
  const toml::array* array(std::string_view key);

  int64_t integer_or(std::string_view key, int64_t fallback) { return integer(key).value_or(fallback); }
  double number_or(std::string_view key, double fallback) { return number(key).value_or(fallback); }
  bool boolean_or(std::string_view key, bool fallback) { return boolean(key).value_or(fallback); }
  std::string string_or(std::string_view key, std::string fallback) {
    return string(key).value_or(std::move(fallback));
  }

  // Records "missing required key" when absent; returns whether present.
  bool require(std::string_view key);
  // Records "key 'k' in [t] must be <what>, got <value>" at the key.
  void invalid(std::string_view key, const std::string& what);
  // One of `choices`, else an error suggesting the nearest.
  std::optional<std::string> choice(std::string_view key, const std::vector<std::string>& choices);
  // Errors for keys present in the table that `what` does not use ("betas" with sgd).
  void reject_keys(const std::vector<std::string>& keys, const std::string& what);

  // A loss parameter read as `kind`; nullopt (with an error recorded) on a type mismatch.
  std::optional<ParamValue> param(std::string_view key, ValueKind kind);

 private:
  void type_error(std::string_view key, const char* expected);
  ParseContext& ctx_;
  const toml::table& table_;
  std::string display_;
};

}  // namespace retort
