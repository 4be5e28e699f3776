// ONNX export of retort models (through Debian's libonnx), and a check of the written file.
//
//   export_onnx(*model, {1, 3, 32, 32}, "resnet8.onnx", {.metadata = {{"arch", "resnet8"}}});
//   std::puts(check_onnx_file("resnet8.onnx").c_str());
//
// The file holds the model's eval-mode forward (BatchNorm with its running statistics, dropout
// off, DeiT's logits the mean of its two heads) whatever mode the model is in; the model is not
// changed. Graph input "images" f32 [batch, C, H, W] (already normalised), output "logits" f32
// [batch, num_classes]; ONNX opset 17 (LayerNormalization), IR version of the linked libonnx.
// Weights are f32 initializers named as the model's state dict ("layer1.0.conv1.weight", ...),
// each with the state-dict shape; BatchNorms stay BatchNormalization nodes (runtimes fuse them
// into the convolutions), except in a BN-folded inference copy (models/fold_batch_norm.h), whose
// folded convolutions are written with their biases and whose folded BatchNorms are left out.
// BatchNorm's num_batches_tracked is not written (it does not affect inference). Constants the
// graph needs besides the weights (reshape targets, scalars) are initializers named "const/...".
// Families: ResNet (CIFAR resnet8..110, resnet8x4/32x4; ImageNet resnet18/34/50), WRN, ViT and
// DeiT's distilled ViT. Any other model is refused with retort::Error naming it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "models/model.h"

namespace retort::models {

struct OnnxExportOptions {
  int64_t opset = 17;                             // 17 up to the newest the linked libonnx knows
  bool dynamic_batch = true;                      // batch dimension symbolic ("batch"), else input[0]
  std::map<std::string, std::string> metadata;   // written as metadata_props (arch, mean, std, ...)
};

// Writes `model` as an ONNX model for inputs of shape `input` [B, C, H, W] (B is the fixed batch
// when !dynamic_batch). The file is written atomically (path + ".tmp", then renamed). Throws
// retort::Error naming the model and what is not exportable (an unknown family, an input shape
// the model refuses, an opset outside the supported range, an unwritable path).
void export_onnx(Model& model, const Shape& input, const std::string& path, const OnnxExportOptions& options = {});

// Runs ONNX's full check on the file: onnx::checker::check_model and strict shape inference
// (types checked, node errors raised, data propagation on). Throws retort::Error with the
// checker's message; returns a one-line summary (opset, nodes, initializers, input and output shapes).
std::string check_onnx_file(const std::string& path);

// What an ONNX file holds, for summaries and tests. Dimensions are written as text: a number, or
// the name of a symbolic dimension ("batch").
struct OnnxValueSummary {
  std::string name;
  std::vector<std::string> dims;
};
struct OnnxFileSummary {
  int64_t ir_version = 0;
  int64_t opset = 0;  // of the default ("ai.onnx") domain
  std::string producer;
  std::vector<OnnxValueSummary> inputs, outputs;
  std::map<std::string, Shape> initializers;   // name -> dims
  std::map<std::string, int64_t> op_counts;     // op type -> nodes of that type
  int64_t nodes = 0;
  std::map<std::string, std::string> metadata;  // metadata_props
};
OnnxFileSummary read_onnx_summary(const std::string& path);

}  // namespace retort::models
