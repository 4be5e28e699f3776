// check_onnx_file and read_onnx_summary: an ONNX file read back, ONNX's checker and strict shape
// inference run on it, and what it holds summarised (see onnx_export.h).
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>
#include <fstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"
#include "models/onnx_export.h"

namespace retort::models {

namespace {
onnx::ModelProto read_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RETORT_CHECK(in.good(), "ONNX file '{}' cannot be opened", path);
  onnx::ModelProto model;
  RETORT_CHECK(model.ParseFromIstream(&in), "ONNX file '{}' is not a valid ONNX protobuf", path);
  return model;
}

std::vector<std::string> dims_text(const onnx::ValueInfoProto& value) {
  std::vector<std::string> dims;
  for (const auto& d : value.type().tensor_type().shape().dim())
    dims.push_back(d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?");
  return dims;
}

std::vector<OnnxValueSummary> value_summaries(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& values) {
  std::vector<OnnxValueSummary> out;
  for (const auto& v : values) out.push_back({v.name(), dims_text(v)});
  return out;
}

OnnxFileSummary summarise(const onnx::ModelProto& model) {
  OnnxFileSummary s;
  s.ir_version = model.ir_version();
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") s.opset = op.version();
  s.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  s.inputs = value_summaries(model.graph().input());
  s.outputs = value_summaries(model.graph().output());
  for (const auto& init : model.graph().initializer())
    s.initializers[init.name()] = Shape(init.dims().begin(), init.dims().end());
  for (const auto& node : model.graph().node()) ++s.op_counts[node.op_type()];
  s.nodes = model.graph().node_size();
  for (const auto& prop : model.metadata_props()) s.metadata[prop.key()] = prop.value();
  return s;
}

std::string values_text(const std::vector<OnnxValueSummary>& values) {
  std::vector<std::string> parts;
  for (const auto& v : values) parts.push_back(fmt::format("{} [{}]", v.name, fmt::join(v.dims, ", ")));
  return fmt::format("{}", fmt::join(parts, "; "));
}
}  // namespace

OnnxFileSummary read_onnx_summary(const std::string& path) { return summarise(read_model(path)); }

std::string check_onnx_file(const std::string& path) {
  onnx::ModelProto model = read_model(path);
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    fail("ONNX checker rejects '{}': {}", path, e.what());
  }
  // onnx.checker.check_model(full_check=True): shape inference that checks types and raises errors
  try {
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1,
                                                                   /*data_propagation=*/true));
  } catch (const std::exception& e) {
    fail("ONNX shape inference fails on '{}': {}", path, e.what());
  }
  OnnxFileSummary s = summarise(model);  // the outputs as shape inference left them
  return fmt::format("{}: opset {}, {} nodes, {} initializers, input {}, output {}", path, s.opset, s.nodes,
                     s.initializers.size(), values_text(s.inputs), values_text(s.outputs));
}

}  // namespace retort::models
