// The commands that work on one model file: `retort eval` (a test split, fed exactly as the
// model was trained; --dump writes its inputs and logits), `retort import` (torchvision/timm
// weights into a retort model file, the classifier kept, reset or dropped) and `retort export`
// (ONNX through libonnx, checked; or a PyTorch-loadable safetensors file naming its architecture).
#pragma once
#include <string>
#include <CLI/CLI.hpp>
#include "apps/model_options.h"

namespace retort::cli {

struct EvalArgs {
  ModelArgs model;
  std::string dataset = "fashion-mnist", root, device = "auto";
  std::string dump;  // --dump FILE: images (as fed), logits and labels as safetensors
  int64_t batch = 256;
};
CLI::App* add_eval_command(CLI::App& app, EvalArgs& args);
int cmd_eval(const EvalArgs& args);

struct ImportArgs {
  std::string arch, weights, out, head = "keep";
  int64_t image_size = 0, num_classes = 0;
  bool non_strict = false;
};
CLI::App* add_import_command(CLI::App& app, ImportArgs& args);
int cmd_import(const ImportArgs& args);

struct ExportArgs {
  ModelArgs model;
  std::string onnx, safetensors;
  int64_t opset = 17;
};
CLI::App* add_export_command(CLI::App& app, ExportArgs& args);
int cmd_export(const ExportArgs& args);

}  // namespace retort::cli
