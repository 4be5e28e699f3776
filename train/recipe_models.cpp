// A recipe's models, configured, initialised, loaded and placed (see train/recipe_models.h).
#include "train/recipe_models.h"
#include "engine/error.h"
#include "models/import_weights.h"
#include "models/input_adapter.h"
#include "models/registry.h"

namespace retort {
namespace {
uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A ViT started from a weights file takes its depth and patch size from the file unless the
// recipe's options give them, as `retort import` reads them (models/import_weights.h).
void vit_shape_from_weights(const ModelSpec& spec, models::ModelConfig& cfg) {
  const bool vit = spec.arch.rfind("vit_", 0) == 0 || spec.arch.rfind("deit_", 0) == 0;
  if (!vit || spec.weights.empty() || (spec.options.count("depth") && spec.options.count("patch_size"))) return;
  const models::ImportTarget file =
      models::import_target(spec.arch, models::read_model_state(spec.weights), cfg.image_size, 1);
  if (!spec.options.count("depth")) cfg.depth = file.config.depth;
  if (!spec.options.count("patch_size")) cfg.patch_size = file.config.patch_size;
}
}  // namespace

models::ModelConfig recipe_model_config(const Recipe& recipe, const std::string& name, int64_t data_classes) {
  const ModelSpec& spec = recipe.models.at(name);
  models::ModelConfig cfg;
  cfg.in_channels = spec.in_channels > 0 ? spec.in_channels : recipe.data.channels;
  cfg.num_classes = spec.head == models::HeadPolicy::drop ? 0 : spec.num_classes > 0 ? spec.num_classes : data_classes;
  cfg.image_size = spec.image_size > 0 ? spec.image_size : recipe.data.image_size;
  cfg.seed = fnv1a(spec.init_from.empty() ? name : spec.init_from, uint64_t(recipe.run.seed));
  for (const auto& [k, v] : spec.options) {
    if (k == "dropout") cfg.dropout = v;
    else if (k == "patch_size") cfg.patch_size = int64_t(v);
    else if (k == "depth") cfg.depth = int64_t(v);
    else fail("{}: model option '{}' is not known (dropout, patch_size, depth)", recipe.where(spec.pos), k);
  }
  vit_shape_from_weights(spec, cfg);
  return cfg;
}

std::shared_ptr<models::Model> build_recipe_model(const Recipe& recipe, const std::string& name, int64_t num_classes,
                                                  Device device, const std::function<void(const std::string&)>& say) {
  const ModelSpec& spec = recipe.models.at(name);
  const models::ModelConfig cfg = recipe_model_config(recipe, name, num_classes);
  auto model = models::create_model(spec.arch, cfg);
  const DataSettings& d = recipe.data;
  if (cfg.in_channels != d.channels || cfg.image_size != d.image_size) {
    model->set_input_adapter(std::make_shared<models::InputAdapter>(
        d.channels, d.image_size, cfg.in_channels, cfg.image_size, data::parse_interpolation(d.interpolation)));
    if (say) say(fmt::format("model '{}': fed {}", name, model->input_adapter()->describe()));
  }
  if (!spec.weights.empty()) {  // strict, pos_embed resampled, the classifier as `head` says
    models::ImportOptions options;
    options.head = spec.head;
    models::load_weights_file(*model, spec.weights, options, say);
  }
  model->to(device);
  return model;
}

}  // namespace retort
