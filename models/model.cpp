// Model helpers shared by the families: tap names, input checks.
#include "models/model.h"
#include "engine/error.h"
#include "models/input_adapter.h"

namespace retort::models {

std::vector<std::string> Model::tap_names(const Shape& input) const {
  std::vector<std::string> names;
  for (auto& t : tap_info(input)) names.push_back(t.name);
  return names;
}

Tensor Model::adapted(const Tensor& input) const { return input_adapter_ ? input_adapter_->adapt(input) : input; }
Shape Model::adapted(const Shape& input) const { return input_adapter_ ? input_adapter_->adapt(input) : input; }

void check_image_shape(const std::string& model, const Shape& s, int64_t in_channels, int64_t min_hw) {
  RETORT_CHECK(s.size() == 4 && s[1] == in_channels && s[2] >= min_hw && s[3] >= min_hw,
               "{}: input {} is not [B, {}, H, W] with H, W >= {} (check in_channels and image size)", model,
               shape_str(s), in_channels, min_hw);
}

void check_image_input(const std::string& model, const Tensor& x, int64_t in_channels, int64_t min_hw) {
  check_image_shape(model, x.shape(), in_channels, min_hw);
}

}  // namespace retort::models
