// The recipe's field tables (train/recipe_fields.h): the allowed keys, the writer and the key
// reference in docs/recipes.md all derive from them, and a documented default is the default.
#include <fstream>
#include <sstream>
#include "helpers.h"
#include "train/recipe.h"
#include "train/recipe_fields.h"
#include "train/recipe_schema.h"

using namespace retort;

TEST_CASE("recipe fields: the key sets are the field tables' keys, in order") {
  CHECK(recipe_keys::stage() == field_keys(stage_fields()));
  CHECK(recipe_keys::run() == std::vector<std::string>{"name", "seed", "device", "out_dir", "log_every_steps"});
  CHECK(recipe_keys::data().front() == "dataset");
  CHECK(recipe_keys::augment() == std::vector<std::string>{"random_crop_padding", "hflip"});
  CHECK(recipe_keys::optimizer().size() == 8);
}

TEST_CASE("recipe fields: each documented plain default is what a recipe without the key gets") {
  const Recipe r = parse_recipe("[models.m]\narch = \"resnet8\"\n[[stages]]\ntrain = \"m\"\nepochs = 1\n", "d.toml");
  const StageSpec& s = r.stages[0];
  for (const auto& f : stage_fields()) {
    if (f.default_text == "required" || f.key == "name" || f.key == "optimizer" || f.key == "schedule" ||
        f.key == "losses")
      continue;  // documented in words, or written as a whole table
    INFO("stage key " << f.key);
    CHECK(f.write(s) == f.default_text);
  }
  CHECK(s.name == "stage0");
  for (const auto& f : run_fields()) {
    if (f.key == "name") continue;
    INFO("run key " << f.key);
    CHECK(f.write(r.run) == f.default_text);
  }
}

TEST_CASE("recipe fields: docs/recipes.md holds the generated key reference") {
  std::ifstream in(test::source_path("docs/recipes.md"));
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::string begin = "<!-- recipe keys: begin -->\n", end = "<!-- recipe keys: end -->";
  const size_t a = doc.find(begin), b = doc.find(end);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  INFO("regenerate with: build/retort list keys, pasted between the markers in docs/recipes.md");
  CHECK(doc.substr(a + begin.size(), b - a - begin.size()) == recipe_key_reference());
}
