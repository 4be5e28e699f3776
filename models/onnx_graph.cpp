// OnnxGraph: builds an onnx::GraphProto's inputs, outputs, initializers and nodes (see onnx_graph.h).
#include "models/onnx_graph.h"
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "engine/error.h"

namespace retort::models::onnx_writer {

onnx::AttributeProto int_attr(const std::string& name, int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto float_attr(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}

onnx::AttributeProto ints_attr(const std::string& name, const std::vector<int64_t>& values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}

OnnxGraph::OnnxGraph(onnx::GraphProto& graph, bool dynamic_batch) : graph_(graph), dynamic_batch_(dynamic_batch) {}

void OnnxGraph::fill_value_info(onnx::ValueInfoProto* info, const std::string& name, const Shape& dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* dim = shape->add_dim();
    if (i == 0 && dynamic_batch_)
      dim->set_dim_param(kBatchDim);
    else
      dim->set_dim_value(dims[i]);
  }
}

void OnnxGraph::add_input(const std::string& name, const Shape& dims) {
  RETORT_CHECK(names_.insert(name).second, "ONNX graph: the input name '{}' is already taken", name);
  fill_value_info(graph_.add_input(), name, dims);
}

// An output names a value that a node produces (ONNX's checker fails the graph when none does).
void OnnxGraph::add_output(const std::string& name, const Shape& dims) {
  fill_value_info(graph_.add_output(), name, dims);
}

std::string OnnxGraph::weight(const std::string& name, const Tensor& t) {
  RETORT_CHECK(t.defined(), "ONNX graph: the tensor '{}' is not defined", name);
  RETORT_CHECK(names_.insert(name).second, "ONNX graph: the initializer '{}' is added twice", name);
  Tensor host = t.detach().to(Device::cpu()).to(DType::f32).contiguous();  // row-major f32
  auto* init = graph_.add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : host.shape()) init->add_dims(d);
  init->set_raw_data(host.raw_data(), host.nbytes());  // little-endian f32, as ONNX stores raw data
  return name;
}

std::string OnnxGraph::i64_constant(const std::vector<int64_t>& values) {
  std::string name = fmt::format("const/i64[{}]", fmt::join(values, ","));
  if (names_.insert(name).second) {
    auto* init = graph_.add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_dims(int64_t(values.size()));
    for (int64_t v : values) init->add_int64_data(v);
  }
  return name;
}

std::string OnnxGraph::i64_scalar(int64_t value) {
  std::string name = fmt::format("const/i64:{}", value);
  if (names_.insert(name).second) {
    auto* init = graph_.add_initializer();  // no dims: a 0-d tensor
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_int64_data(value);
  }
  return name;
}

std::string OnnxGraph::f32_scalar(float value) {
  std::string name = fmt::format("const/f32:{}", value);
  if (names_.insert(name).second) {
    auto* init = graph_.add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    init->add_float_data(value);
  }
  return name;
}

std::string OnnxGraph::unique_name(const std::string& base) {
  std::string name = base;
  for (int i = 1; !names_.insert(name).second; ++i) name = fmt::format("{}_{}", base, i);
  return name;
}

std::string OnnxGraph::node(const std::string& op, const std::string& scope, const std::vector<std::string>& inputs,
                            const std::vector<onnx::AttributeProto>& attributes) {
  std::string name = unique_name(scope.empty() ? op : scope + "/" + op);
  auto* n = graph_.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& in : inputs) n->add_input(in);
  n->add_output(name);
  for (const auto& a : attributes) *n->add_attribute() = a;
  return name;
}

void OnnxGraph::rename_value(const std::string& value, const std::string& new_name) {
  RETORT_CHECK(names_.insert(new_name).second, "ONNX graph: cannot rename '{}' to '{}', a name already taken", value,
               new_name);
  for (auto& n : *graph_.mutable_node()) {
    for (auto& in : *n.mutable_input())
      if (in == value) in = new_name;
    for (auto& out : *n.mutable_output())
      if (out == value) out = new_name;
  }
}

}  // namespace retort::models::onnx_writer
