// Model registry: create_model(name, config) for every built-in architecture, and
// list_models() for `retort list models` (name, family, parameter count, tap names).
// Names: resnet8/14/20/32/44/56/110, resnet8x4, resnet32x4 (CIFAR, RepDistiller);
// wrn_<depth>_<k> (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2, wrn_40_4 listed; any 6n+4 depth
// accepted); resnet18/34/50 (ImageNet, torchvision); vit_tiny/vit_small/vit_base, also as
// timm-style vit_<size>_patch<P>_<S> which sets patch_size and image_size; DeiT's distilled
// ViTs deit_tiny_distilled/deit_small_distilled/deit_base_distilled (also with _patch<P>_<S>).
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "models/model.h"

namespace retort::models {

std::shared_ptr<Model> create_model(const std::string& name, const ModelConfig& cfg = {});

struct ModelInfo {
  std::string name;
  std::string family;
  int64_t num_parameters = 0;
  ModelConfig config;  // the configuration the count and taps were computed for
  Shape input;          // [1, C, S, S]
  std::vector<TapInfo> taps;
};

// The config list_models() uses: 1x28x28 inputs (Fashion-MNIST), 10 classes.
ModelConfig default_list_config();
// Every registered name, built without initialisation (cheap) for cfg.
std::vector<ModelInfo> list_models(const ModelConfig& cfg = default_list_config());
std::vector<std::string> model_names();

// True when create_model knows `name` (a listed name, any wrn_<depth>_<k>, or a timm-style
// vit_<size>_patch<P>_<S>); a bad depth is still refused by create_model itself.
bool is_known_model(const std::string& name);

// The recipe options (ModelConfig fields set by [models.X.options]) that architecture `name`
// uses: dropout for WRN and ViT, depth and patch_size for ViT (patch_size only when the name
// does not fix it); empty for ResNets and unknown names.
std::vector<std::string> model_options(const std::string& name);

// The registered name closest to `name` by edit distance.
std::string nearest_model_name(const std::string& name);

}  // namespace retort::models
