// A recipe's models, configured, initialised, loaded and placed (see train/recipe_models.h).
#include "train/recipe_models.h"
#include "engine/error.h"
#include "models/import_weights.h"
#include "models/registry.h"

namespace retort {
namespace {
uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

std::shared_ptr<models::Model> build_recipe_model(const Recipe& recipe, const std::string& name, int64_t num_classes,
                                                  Device device, const std::function<void(const std::string&)>& say) {
  const ModelSpec& spec = recipe.models.at(name);
  models::ModelConfig cfg;
  cfg.in_channels = recipe.data.channels;
  cfg.num_classes = num_classes;
  cfg.image_size = recipe.data.image_size;
  cfg.seed = fnv1a(spec.init_from.empty() ? name : spec.init_from, uint64_t(recipe.run.seed));
  for (const auto& [k, v] : spec.options) {
    if (k == "dropout") cfg.dropout = v;
    else if (k == "patch_size") cfg.patch_size = int64_t(v);
    else if (k == "depth") cfg.depth = int64_t(v);
    else fail("{}: model option '{}' is not known (dropout, patch_size, depth)", recipe.where(spec.pos), k);
  }
  auto model = models::create_model(spec.arch, cfg);
  if (!spec.weights.empty()) models::load_weights_file(*model, spec.weights, {}, say);  // strict, pos_embed resampled
  model->to(device);
  return model;
}

}  // namespace retort
