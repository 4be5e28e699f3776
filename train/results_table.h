// The table printed at the end of a run: each stage's model with its test accuracy,
// parameter count and wall time.
#pragma once
#include <filesystem>
#include <string>
#include <vector>
#include "engine/device.h"
#include "train/recipe.h"
#include "train/run_dir.h"

namespace retort {

std::string results_table(const std::vector<ModelResult>& results, const Recipe& recipe, Device device, double total_s);
std::string read_text_file(const std::filesystem::path& path);

}  // namespace retort
