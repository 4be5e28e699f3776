// export_onnx: checks what was asked, builds the ModelProto (graph from the model's family,
// opset, producer, metadata) and writes it atomically (see onnx_export.h).
#include "models/onnx_export.h"
#include <onnx/defs/schema.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include "engine/error.h"
#include "engine/version.h"
#include "models/input_adapter.h"
#include "models/onnx_families.h"
#include "models/onnx_graph.h"
#include "models/resnet.h"
#include "models/vit.h"
#include "models/wrn.h"

namespace retort::models {

namespace {
constexpr int64_t kMinOpset = 17;  // LayerNormalization

int64_t newest_known_opset() {
  return onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map().at(onnx::ONNX_DOMAIN).second;
}

// How errors name the model: "resnet8 (ResNet, family resnet-cifar)", "VisionTransformer (family
// vit, dim 192, 2 blocks, patch 4)", "ToyModel (family toy)".
std::string describe(const Model& model) {
  if (auto* r = dynamic_cast<const ResNet*>(&model))
    return fmt::format("{} (ResNet, family {})", r->spec().name, model.family());
  if (auto* w = dynamic_cast<const WideResNet*>(&model))
    return fmt::format("{} (WideResNet, family {})", w->name(), model.family());
  if (auto* v = dynamic_cast<const VisionTransformer*>(&model))
    return fmt::format("VisionTransformer (family {}, dim {}, {} blocks, patch {}{})", model.family(),
                       v->patch_embed->proj->out_channels, v->blocks.size(), v->patch_embed->proj->spec.kernel,
                       v->distilled() ? ", distilled" : "");
  return fmt::format("{} (family {})", model.type_name(), model.family());
}

bool known_family(const Model& model) {
  return dynamic_cast<const ResNet*>(&model) || dynamic_cast<const WideResNet*>(&model) ||
         dynamic_cast<const VisionTransformer*>(&model);
}

void check_request(const Model& model, const Shape& input, const OnnxExportOptions& options) {
  const std::string who = describe(model);
  RETORT_CHECK(known_family(model),
               "export_onnx: {} cannot be exported to ONNX: the exporter knows ResNet (resnet-cifar, "
               "resnet-imagenet), WideResNet (wrn) and VisionTransformer (vit, DeiT)",
               who);
  RETORT_CHECK(options.opset >= kMinOpset && options.opset <= newest_known_opset(),
               "export_onnx: {}: opset {} is not supported; the exporter writes opset {}..{} (the first has "
               "LayerNormalization, the last is the newest the linked libonnx knows)",
               who, options.opset, kMinOpset, newest_known_opset());
  for (const auto& [key, value] : options.metadata)
    RETORT_CHECK(!key.empty(), "export_onnx: {}: a metadata key is empty (value '{}')", who, value);
  RETORT_CHECK(model.has_classifier(),
               "export_onnx: {}: has no classifier (built with num_classes 0), and the ONNX file's output is logits",
               who);
  RETORT_CHECK(!model.input_adapter(),
               "export_onnx: {}: has an input adapter ({}), which is not exportable; export the model for its own "
               "input size and channels",
               who, model.input_adapter() ? model.input_adapter()->describe() : "");
  // tap_info checks the input shape as the model's forward would (channels, ViT's image size)
  try {
    (void)model.tap_info(input);
  } catch (const Error& e) {
    fail("export_onnx: {}: input {} is not exportable: {}", who, shape_str(input), e.what());
  }
}

Shape logits_shape(const Model& model, const Shape& input) {
  for (const auto& tap : model.tap_info(input))
    if (tap.name == "logits") return tap.shape;
  fail("export_onnx: {} lists no \"logits\" tap", describe(model));
}

// The model's graph from "images" to "logits" (check_request has made sure the family is known).
void build_graph(const Model& model, const Shape& input, bool dynamic_batch, onnx::GraphProto& graph) {
  onnx_writer::OnnxGraph g(graph, dynamic_batch);
  g.add_input("images", input);
  std::string logits;
  if (auto* resnet = dynamic_cast<const ResNet*>(&model))
    logits = onnx_writer::resnet_graph(g, *resnet, "images");
  else if (auto* wrn = dynamic_cast<const WideResNet*>(&model))
    logits = onnx_writer::wrn_graph(g, *wrn, "images");
  else
    logits = onnx_writer::vit_graph(g, dynamic_cast<const VisionTransformer&>(model), "images");
  g.rename_value(logits, "logits");
  g.add_output("logits", logits_shape(model, input));
}

onnx::ModelProto build_model(const Model& model, const Shape& input, const OnnxExportOptions& options) {
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);
  proto.set_producer_name("retort");
  proto.set_producer_version(retort::version());
  auto* opset = proto.add_opset_import();
  opset->set_domain(onnx::ONNX_DOMAIN);
  opset->set_version(options.opset);
  for (const auto& [key, value] : options.metadata) {
    auto* prop = proto.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  auto* graph = proto.mutable_graph();
  graph->set_name(model.family());
  build_graph(model, input, options.dynamic_batch, *graph);
  return proto;
}

// path + ".tmp", then renamed over path: a reader never sees a half-written file.
void write_atomically(const onnx::ModelProto& proto, const std::string& path, const std::string& who) {
  std::string bytes;
  RETORT_CHECK(proto.SerializeToString(&bytes),
               "export_onnx: {}: the model does not serialise (ONNX files without external data are limited to 2 GiB)",
               who);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RETORT_CHECK(out.good(), "export_onnx: {}: cannot open '{}' for writing (does the directory exist?)", who, tmp);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    if (!out.good()) {
      std::remove(tmp.c_str());
      fail("export_onnx: {}: writing '{}' failed (disk full?)", who, tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("export_onnx: {}: cannot rename '{}' to '{}': {}", who, tmp, path, ec.message());
  }
}
}  // namespace

void export_onnx(Model& model, const Shape& input, const std::string& path, const OnnxExportOptions& options) {
  check_request(model, input, options);
  write_atomically(build_model(model, input, options), path, describe(model));
}

}  // namespace retort::models
