// OnnxGraph: a small builder of an onnx::GraphProto for the ONNX exporter (models/onnx_export.h).
// It adds graph inputs/outputs (f32, with the batch dimension symbolic "batch" or fixed),
// f32 initializers copied from retort tensors under their state-dict names, int64/f32 constants
// (named "const/...", shared by every node that uses the same value), and nodes whose names and
// output names ("<scope>/<Op>", made unique) say which module they come from.
// Internal to models/onnx_*.cpp: it exposes onnx's protobuf types, which the public header does not.
#pragma once
#include <onnx/onnx_pb.h>
#include <set>
#include <string>
#include <vector>
#include "engine/tensor.h"

namespace retort::models::onnx_writer {

// The name of the symbolic batch dimension.
inline constexpr const char* kBatchDim = "batch";

onnx::AttributeProto int_attr(const std::string& name, int64_t value);
onnx::AttributeProto float_attr(const std::string& name, float value);
onnx::AttributeProto ints_attr(const std::string& name, const std::vector<int64_t>& values);

class OnnxGraph {
 public:
  OnnxGraph(onnx::GraphProto& graph, bool dynamic_batch);

  // A graph input/output of f32 tensors; dims[0] is the batch (symbolic when dynamic_batch).
  void add_input(const std::string& name, const Shape& dims);
  void add_output(const std::string& name, const Shape& dims);

  // The tensor (any dtype or device) as an f32 initializer named `name`; returns the name.
  std::string weight(const std::string& name, const Tensor& t);
  // Shared constants: an i64 vector (or a 0-d scalar) and an f32 scalar.
  std::string i64_constant(const std::vector<int64_t>& values);
  std::string i64_scalar(int64_t value);
  std::string f32_scalar(float value);

  // A node with one output, named "<scope>/<op>" (with a numeric suffix when taken); returns
  // that output name.
  std::string node(const std::string& op, const std::string& scope, const std::vector<std::string>& inputs,
                   const std::vector<onnx::AttributeProto>& attributes = {});
  // Renames a value wherever it appears, in the node that produces it and those that read it
  // (e.g. to the graph output "logits").
  void rename_value(const std::string& value, const std::string& new_name);

 private:
  std::string unique_name(const std::string& base);
  void fill_value_info(onnx::ValueInfoProto* info, const std::string& name, const Shape& dims);

  onnx::GraphProto& graph_;
  bool dynamic_batch_;
  std::set<std::string> names_;  // every value and node name used so far
};

}  // namespace retort::models::onnx_writer
