// Built-in recipe discovery: names, first-comment descriptions, name resolution.
#include <doctest/doctest.h>
#include "recipe_test_util.h"
#include "train/catalog.h"

using namespace retort;
using retort::test::error_of;
using retort::test::TempDir;

TEST_CASE("catalog: lists *.toml recipes with their first comment line") {
  TempDir dir;
  dir.write("kd-fashion.toml", "# KD from a ResNet-20 teacher on Fashion-MNIST\n# second line\n[run]\n");
  dir.write("afp.toml", "\n  ## Adaptive feature transfer  \n[run]\n");
  dir.write("plain.toml", "[run]\n# not a description\n");
  dir.write("notes.txt", "# not a recipe\n");
  const auto recipes = list_recipes(dir.path);
  REQUIRE(recipes.size() == 3);
  CHECK(recipes[0].name == "afp");
  CHECK(recipes[0].description == "Adaptive feature transfer");
  CHECK(recipes[1].name == "kd-fashion");
  CHECK(recipes[1].description == "KD from a ResNet-20 teacher on Fashion-MNIST");
  CHECK(recipes[1].path == dir.path / "kd-fashion.toml");
  CHECK(recipes[2].description.empty());
  CHECK(format_recipe_list(recipes) ==
        "afp         Adaptive feature transfer\n"
        "kd-fashion  KD from a ResNet-20 teacher on Fashion-MNIST\n"
        "plain       \n");
  CHECK(list_recipes(dir.path / "missing").empty());
  CHECK(builtin_recipe_dir() == std::filesystem::path(RETORT_SOURCE_DIR) / "recipes");
}

TEST_CASE("catalog: run NAME resolves a file path or a built-in recipe name") {
  TempDir dir;
  const std::string kd = dir.write("kd-fashion.toml", "# KD\n");
  CHECK(resolve_recipe(kd, dir.path) == kd);
  CHECK(resolve_recipe("kd-fashion", dir.path) == dir.path / "kd-fashion.toml");
  CHECK(resolve_recipe("kd-fashion.toml", dir.path) == dir.path / "kd-fashion.toml");
  CHECK(error_of([&] { resolve_recipe("kd-fashon", dir.path); }) ==
        "no recipe file 'kd-fashon' and no built-in recipe 'kd-fashon' in " + dir.path.string() +
            "; did you mean 'kd-fashion'?");
}
