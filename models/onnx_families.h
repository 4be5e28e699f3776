// The ONNX graphs of the model families for the exporter (models/onnx_export.cpp): each adds the
// nodes of its model's eval-mode forward from the graph input `images` [B, C, H, W] and returns
// the name of the logits value [B, num_classes]. ResNet and WRN: models/onnx_resnet.cpp;
// ViT/DeiT: models/onnx_vit.cpp.
#pragma once
#include <string>
#include "models/onnx_graph.h"

namespace retort::models {
class ResNet;
class VisionTransformer;
class WideResNet;
}  // namespace retort::models

namespace retort::models::onnx_writer {

std::string resnet_graph(OnnxGraph& g, const ResNet& model, const std::string& images);
std::string wrn_graph(OnnxGraph& g, const WideResNet& model, const std::string& images);
std::string vit_graph(OnnxGraph& g, const VisionTransformer& model, const std::string& images);

}  // namespace retort::models::onnx_writer
