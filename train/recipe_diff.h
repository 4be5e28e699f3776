// What differs between two recipes, key by key ("stages[1].epochs: 2 -> 3"), for a resume
// whose recipe is not the one the run started with.
#pragma once
#include <string>
#include <vector>
#include "train/recipe.h"

namespace retort {

// Every key whose resolved value differs, in file order; empty when the recipes are equal.
std::vector<std::string> recipe_differences(const Recipe& before, const Recipe& after);

}  // namespace retort
