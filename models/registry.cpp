// Model registry: names -> constructors, nearest-name suggestions, listing.
#include "models/registry.h"
#include <algorithm>
#include <functional>
#include <regex>
#include "engine/error.h"
#include "engine/nn/init.h"
#include "models/resnet.h"
#include "models/vit.h"
#include "models/wrn.h"

namespace retort::models {

namespace {
const std::vector<int64_t> kCifarDepths{8, 14, 20, 32, 44, 56, 110};
const std::vector<std::pair<int64_t, int64_t>> kListedWrn{{16, 1}, {16, 2}, {40, 1}, {40, 2}, {40, 4}};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (auto d : kCifarDepths) names.push_back("resnet" + std::to_string(d));
  names.push_back("resnet8x4");
  names.push_back("resnet32x4");
  for (auto [d, k] : kListedWrn) names.push_back("wrn_" + std::to_string(d) + "_" + std::to_string(k));
  for (auto n : {"resnet18", "resnet34", "resnet50", "vit_tiny", "vit_small", "vit_base", "deit_tiny_distilled",
                 "deit_small_distilled", "deit_base_distilled"})
    names.push_back(n);
  return names;
}

std::string nearest_model_name(const std::string& name) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (auto& n : model_names()) {
    size_t d = edit_distance(name, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best;
}

bool is_known_model(const std::string& name) {
  for (const auto& n : model_names())
    if (n == name) return true;
  static const std::regex wrn_re(R"(wrn_(\d+)_(\d+))");
  static const std::regex vit_re(R"((vit_tiny|vit_small|vit_base)_patch(\d+)_(\d+))");
  static const std::regex deit_re(R"(deit_(tiny|small|base)_distilled_patch(\d+)_(\d+))");
  return std::regex_match(name, wrn_re) || std::regex_match(name, vit_re) || std::regex_match(name, deit_re);
}

std::vector<std::string> model_options(const std::string& name) {
  if (!is_known_model(name)) return {};
  if (name.rfind("wrn_", 0) == 0) return {"dropout"};
  if (name.rfind("vit_", 0) == 0 || name.rfind("deit_", 0) == 0)
    return name.find("_patch") == std::string::npos ? std::vector<std::string>{"dropout", "depth", "patch_size"}
                                                    : std::vector<std::string>{"dropout", "depth"};
  return {};
}

std::shared_ptr<Model> create_model(const std::string& name, const ModelConfig& cfg) {
  for (auto d : kCifarDepths)
    if (name == "resnet" + std::to_string(d))
      return std::make_shared<ResNet>(cifar_resnet_spec(name, d, {16, 16, 32, 64}), cfg);
  if (name == "resnet8x4") return std::make_shared<ResNet>(cifar_resnet_spec(name, 8, {32, 64, 128, 256}), cfg);
  if (name == "resnet32x4") return std::make_shared<ResNet>(cifar_resnet_spec(name, 32, {32, 64, 128, 256}), cfg);
  if (name == "resnet18" || name == "resnet34" || name == "resnet50")
    return std::make_shared<ResNet>(imagenet_resnet_spec(name), cfg);
  std::smatch m;
  static const std::regex wrn_re(R"(wrn_(\d+)_(\d+))");
  if (std::regex_match(name, m, wrn_re))
    return std::make_shared<WideResNet>(name, std::stoll(m[1]), std::stoll(m[2]), cfg);
  static const std::regex vit_re(R"((vit_tiny|vit_small|vit_base)(?:_patch(\d+)_(\d+))?)");
  if (std::regex_match(name, m, vit_re)) {
    ModelConfig c = cfg;
    if (m[2].matched) {
      c.patch_size = std::stoll(m[2]);
      c.image_size = std::stoll(m[3]);
    }
    ViTSpec spec = vit_spec(m[1], c);
    spec.name = name;
    return std::make_shared<VisionTransformer>(spec, c);
  }
  // DeiT's distilled ViTs: the same sizes with a distillation token and a second head
  static const std::regex deit_re(R"(deit_(tiny|small|base)_distilled(?:_patch(\d+)_(\d+))?)");
  if (std::regex_match(name, m, deit_re)) {
    ModelConfig c = cfg;
    if (m[2].matched) {
      c.patch_size = std::stoll(m[2]);
      c.image_size = std::stoll(m[3]);
    }
    ViTSpec spec = vit_spec("vit_" + m[1].str(), c);
    spec.name = name;
    spec.distilled = true;
    return std::make_shared<VisionTransformer>(spec, c);
  }
  fail("unknown model '{}'; did you mean '{}'? (`retort list models` shows all: {})", name, nearest_model_name(name),
       fmt::join(model_names(), ", "));
}

ModelConfig default_list_config() {
  ModelConfig c;
  c.in_channels = 1;
  c.num_classes = 10;
  c.image_size = 28;
  return c;
}

std::vector<ModelInfo> list_models(const ModelConfig& cfg) {
  std::vector<ModelInfo> out;
  nn::SkipInitGuard skip;  // only names and shapes are needed
  for (auto& name : model_names()) {
    auto model = create_model(name, cfg);
    ModelInfo info;
    info.name = name;
    info.family = model->family();
    info.num_parameters = model->num_parameters();
    info.config = cfg;
    info.input = {1, cfg.in_channels, cfg.image_size, cfg.image_size};
    info.taps = model->tap_info(info.input);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace retort::models
