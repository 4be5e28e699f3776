// The model a command works on, as `retort eval` and `retort export` take it: a weights file,
// rebuilt from what the file says about itself (train/model_file.h: the architecture, its
// configuration and the input it was trained on), or from the options given here for files
// that do not say (torchvision/timm imports), options overriding the file.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <CLI/CLI.hpp>
#include "models/model.h"
#include "train/model_file.h"

namespace retort::cli {

struct ModelArgs {
  std::string arch, weights;
  int64_t num_classes = 0, image_size = 0, channels = 0, patch_size = 0, depth = 0;  // 0: the file's
  int64_t resize = -1;                    // -1: the file's (else 0)
  std::string interpolation;              // "": the file's (else bilinear)
  std::vector<double> mean, std;          // empty: the file's (else the dataset's)
};
// --model, --weights (required), --num-classes, --image-size, --channels, --patch-size, --depth,
// and with `input` the preprocessing: --resize, --interpolation, --mean, --std.
void add_model_options(CLI::App* command, ModelArgs& args, bool input);

struct OpenedModel {
  std::shared_ptr<models::Model> model;
  std::string arch;
  ModelInput input;           // the file's, overridden by the options
  bool input_from_file = false;  // the file says how it was fed (a model file of a retort run)
};
// Builds and loads the model (strictly; `log` gets the loader's report). default_mean/std fill
// in the normalisation when neither the file nor the options give it.
OpenedModel open_model(const ModelArgs& args, const std::vector<double>& default_mean,
                       const std::vector<double>& default_std, const std::function<void(const std::string&)>& log);

// The metadata a file written from the opened model carries (train/model_file.h).
StringMap opened_model_metadata(const OpenedModel& opened);

}  // namespace retort::cli
