// ONNX export (models/onnx_export.h): resnet8, resnet8x4, wrn_16_2, resnet18, a 2-block vit_tiny and
// a distilled DeiT pass ONNX's full check (checker + strict shape inference); their graphs take
// "images" [batch, 3, 32, 32] and give "logits" [batch, 10]; the initializers are exactly the state
// dict (less num_batches_tracked) with its shapes; the node counts follow the modules; a BN-folded
// copy has no BatchNormalization left; metadata and a fixed batch round-trip; the file is written
// atomically and deterministically; unexportable requests (an unknown family, a wrong input shape,
// no classifier, an unsupported opset, an unwritable path) and broken files fail with clear messages.
// Numerical agreement with onnxruntime: bench/onnx/compare_onnxruntime.py.
#include <map>
#include <string>
#include "engine/nn/attention.h"
#include "engine/nn/layers.h"
#include "helpers.h"
#include "io/temp_dir.h"
#include "models/fold_batch_norm.h"
#include "models/onnx_export.h"
#include "models/registry.h"

using namespace retort;
using namespace retort::models;
using retort::test::TempDir;

namespace {

const Shape kInput{2, 3, 32, 32};

ModelConfig small_config() {
  ModelConfig cfg;
  cfg.depth = 2;  // ViT blocks (the ResNets and WRN ignore it)
  return cfg;
}

// The state dict as the exporter writes it: every tensor but BatchNorm's step counter.
std::map<std::string, Shape> state_dict_shapes(const Model& model) {
  std::map<std::string, Shape> out;
  for (const auto& [name, t] : model.state_dict())
    if (!name.ends_with("num_batches_tracked")) out[name] = t.shape();
  return out;
}

// The initializers that are model tensors, not the graph's "const/..." constants.
std::map<std::string, Shape> weight_initializers(const OnnxFileSummary& s) {
  std::map<std::string, Shape> out;
  for (const auto& [name, dims] : s.initializers)
    if (!name.starts_with("const/")) out[name] = dims;
  return out;
}

template <class M>
int64_t count_modules(const Model& model) {
  int64_t n = 0;
  for (const auto& [name, m] : model.named_modules()) n += dynamic_cast<M*>(m) != nullptr;
  return n;
}

int64_t op_count(const OnnxFileSummary& s, const std::string& op) {
  auto it = s.op_counts.find(op);
  return it == s.op_counts.end() ? 0 : it->second;
}

// Exports, runs the full check and reads the file back.
OnnxFileSummary export_and_check(Model& model, const std::string& path, const OnnxExportOptions& options = {}) {
  export_onnx(model, kInput, path, options);
  std::string summary = check_onnx_file(path);
  INFO(summary);
  CHECK(summary.find("opset 17") != std::string::npos);
  CHECK(summary.find("logits [batch, 10]") != std::string::npos);
  return read_onnx_summary(path);
}

// A model of a family the exporter does not know.
class ToyModel : public Model {
 public:
  std::string type_name() const override { return "ToyModel"; }
  std::string family() const override { return "toy"; }
  using Model::forward;
  Tensor forward(const Tensor& x, Taps*) override { return x; }
  std::vector<TapInfo> tap_info(const Shape& in) const override { return {{"logits", {in[0], 10}}}; }
  const ModelConfig& config() const override { return config_; }
  ModelConfig config_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("onnx export: ResNets, WRN and ViT pass the full check with the state dict as initializers") {
  TempDir dir("onnx_families");
  for (const std::string name : {"resnet8", "resnet8x4", "wrn_16_2", "resnet18", "vit_tiny"}) {
    CAPTURE(name);
    auto model = create_model(name, small_config());
    OnnxFileSummary s = export_and_check(*model, dir.file(name + ".onnx"));
    REQUIRE(s.inputs.size() == 1);
    REQUIRE(s.outputs.size() == 1);
    CHECK(s.inputs[0].name == "images");
    CHECK(s.inputs[0].dims == std::vector<std::string>{"batch", "3", "32", "32"});
    CHECK(s.outputs[0].name == "logits");
    CHECK(s.outputs[0].dims == std::vector<std::string>{"batch", "10"});
    CHECK(s.opset == 17);
    CHECK(s.producer.starts_with("retort"));
    CHECK(weight_initializers(s) == state_dict_shapes(*model));
    // one node per layer of the forward
    CHECK(op_count(s, "Conv") == count_modules<nn::Conv2d>(*model));
    CHECK(op_count(s, "BatchNormalization") == count_modules<nn::BatchNorm2d>(*model));
    CHECK(op_count(s, "LayerNormalization") == count_modules<nn::LayerNorm>(*model));
    CHECK(op_count(s, "Softmax") == count_modules<nn::MultiheadSelfAttention>(*model));
    CHECK(op_count(s, "Erf") == count_modules<nn::Mlp>(*model));
    CHECK(op_count(s, "MaxPool") == (name == "resnet18" ? 1 : 0));
    CHECK(op_count(s, "Gemm") == 1);  // the classifier head
  }
}

TEST_CASE("onnx export: DeiT's two heads and a BN-folded copy's folded convolutions") {
  TempDir dir("onnx_variants");
  auto deit = create_model("deit_tiny_distilled", small_config());
  OnnxFileSummary d = export_and_check(*deit, dir.file("deit.onnx"));
  CHECK(weight_initializers(d) == state_dict_shapes(*deit));
  CHECK(d.initializers.count("dist_token") == 1);
  CHECK(op_count(d, "Gemm") == 2);  // head and head_dist, averaged

  auto resnet = create_model("resnet8", small_config());
  resnet->eval();
  auto folded = make_frozen_inference_copy(*resnet);
  OnnxFileSummary f = export_and_check(*folded, dir.file("folded.onnx"));
  CHECK(op_count(f, "BatchNormalization") == 0);
  CHECK(op_count(f, "Conv") == count_modules<nn::Conv2d>(*resnet));
  CHECK(f.initializers.at("layer1.0.conv1.bias") == Shape{16});
  CHECK(f.initializers.count("layer1.0.bn1.running_mean") == 0);
}

TEST_CASE("onnx export: metadata and a fixed batch round-trip; the write is atomic and deterministic") {
  TempDir dir("onnx_metadata");
  auto model = create_model("resnet8", small_config());
  OnnxExportOptions options;
  options.dynamic_batch = false;
  options.metadata = {{"arch", "resnet8"}, {"mean", "0.5071,0.4865,0.4409"}, {"std", "0.2673,0.2564,0.2762"}};
  export_onnx(*model, kInput, dir.file("a.onnx"), options);
  CHECK_NOTHROW(check_onnx_file(dir.file("a.onnx")));
  OnnxFileSummary s = read_onnx_summary(dir.file("a.onnx"));
  CHECK(s.metadata == options.metadata);
  CHECK(s.inputs[0].dims == std::vector<std::string>{"2", "3", "32", "32"});
  CHECK(s.outputs[0].dims == std::vector<std::string>{"2", "10"});
  // no ".tmp" left behind; the same model gives the same bytes
  export_onnx(*model, kInput, dir.file("b.onnx"), options);
  CHECK(dir.entries().size() == 2);
  CHECK(test::read_bytes(dir.file("a.onnx")) == test::read_bytes(dir.file("b.onnx")));
}

TEST_CASE("onnx export: unexportable requests name the model and what is wrong; broken files fail the check") {
  TempDir dir("onnx_errors");
  const std::string path = dir.file("x.onnx");
  ToyModel toy;
  std::string e = error_of([&] { export_onnx(toy, kInput, path); });
  CHECK(e.find("ToyModel") != std::string::npos);
  CHECK(e.find("family toy") != std::string::npos);
  CHECK(e.find("cannot be exported to ONNX") != std::string::npos);

  auto vit = create_model("vit_tiny", small_config());  // pos_embed sized for 32x32
  e = error_of([&] { export_onnx(*vit, {1, 3, 64, 64}, path); });
  CHECK(e.find("VisionTransformer (family vit, dim 192, 2 blocks, patch 4)") != std::string::npos);
  CHECK(e.find("is not exportable") != std::string::npos);
  CHECK(e.find("image_size 32") != std::string::npos);

  auto resnet = create_model("resnet8", small_config());
  e = error_of([&] { export_onnx(*resnet, {1, 1, 32, 32}, path); });
  CHECK(e.find("resnet8") != std::string::npos);
  CHECK(e.find("in_channels") != std::string::npos);
  ModelConfig features_only = small_config();
  features_only.num_classes = 0;
  e = error_of([&] { export_onnx(*create_model("wrn_16_2", features_only), kInput, path); });
  CHECK(e.find("wrn_16_2") != std::string::npos);
  CHECK(e.find("has no classifier") != std::string::npos);
  OnnxExportOptions old;
  old.opset = 13;
  e = error_of([&] { export_onnx(*resnet, kInput, path, old); });
  CHECK(e.find("opset 13 is not supported") != std::string::npos);
  e = error_of([&] { export_onnx(*resnet, kInput, dir.file("missing/x.onnx")); });
  CHECK(e.find("cannot open") != std::string::npos);
  CHECK(dir.entries().empty());  // nothing written by any failed export

  test::write_bytes(path, "not a protobuf \xff\xff\xff");
  CHECK(error_of([&] { check_onnx_file(path); }).find("not a valid ONNX protobuf") != std::string::npos);
  test::write_bytes(path, "");  // parses as an empty ModelProto, which the checker refuses
  CHECK(error_of([&] { check_onnx_file(path); }).find("ONNX checker rejects") != std::string::npos);
}
