// What a model file says about itself, so a model can leave the run that trained it: its
// architecture and configuration (classes, channels, image size, ViT patch and depth) and the
// input it was trained on (preprocessing, normalisation, class names), as safetensors metadata.
// The runner writes it into every model file; `retort eval` and `retort export` read it back,
// so they build the same model and feed it exactly as training did.
#pragma once
#include <optional>
#include <string>
#include <vector>
#include "engine/data/transforms.h"
#include "engine/io/safetensors.h"
#include "models/model.h"
#include "train/recipe.h"

namespace retort {

// The input a model expects: images of `channels` x image_size x image_size, preprocessed as
// `resize` (shorter side; 0: straight to image_size) and `interpolation` say, then normalised.
struct ModelInput {
  int64_t channels = 0, image_size = 0;
  int64_t resize = 0;
  std::string interpolation = "bilinear";
  std::vector<double> mean, std;
  std::vector<std::string> class_names;  // empty: unknown
  bool operator==(const ModelInput&) const = default;
};

// The recipe's input (its data settings) with the data's class names.
ModelInput recipe_model_input(const Recipe& recipe, std::vector<std::string> class_names);

// Metadata of a model file: "arch", "model.*" (the config) and "input.*" (when input is given).
StringMap model_file_metadata(const std::string& arch, const models::ModelConfig& config,
                              const std::optional<ModelInput>& input);

struct ModelFileInfo {
  std::string arch;                   // "" when the file does not say
  std::optional<models::ModelConfig> config;  // absent in files written before these keys existed
  std::optional<ModelInput> input;
};
// Reads what model_file_metadata wrote; `path` names the file in errors about malformed values.
ModelFileInfo model_file_info(const StringMap& metadata, const std::string& path);

// The batch transforms that turn stored images of stored_h x stored_w into what the model
// sees: preprocessed (resize, centre crop) unless that happened as they were decoded (image
// folders: `decoded_preprocessed`), then normalised. Training's batches (after augmentation),
// its evaluations and `retort eval` all use this one function.
std::vector<data::BatchTransform> input_transforms(const ModelInput& input, int64_t stored_h, int64_t stored_w,
                                                   bool decoded_preprocessed);

}  // namespace retort
