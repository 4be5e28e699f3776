// Model: a Module whose forward returns logits and, on request, fills named feature taps
// ("stem", "stage1", "stage1.preact", "pooled", "tokens.3", "cls", "logits", ...) that the
// transfer losses read by name. Each model can list its taps with their shapes for a given
// input shape without running a forward.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "engine/nn/module.h"

namespace retort::nn {
class BatchNorm2d;
}

namespace retort::models {

using Taps = std::map<std::string, Tensor>;

struct TapInfo {
  std::string name;
  Shape shape;  // for the input shape it was asked for (batch dim included)
  // ViT token taps [B, prefix + h*w, D]: the tokens before the patch grid (CLS, and DeiT's
  // distillation token); 0 for maps and vectors
  int64_t prefix_tokens = 0;
};

// What create_model needs. Zero means "the family's default" where noted.
struct ModelConfig {
  int64_t in_channels = 3;
  int64_t num_classes = 10;  // 0: no classifier (a feature extractor: forward returns "pooled")
  int64_t image_size = 32;  // square inputs; ViT needs it (pos_embed), others accept any size
  uint64_t seed = 0;        // initialisation seed
  double dropout = 0.0;     // WRN block dropout, ViT MLP/attention-output dropout
  int64_t patch_size = 0;   // ViT: 0 = 16 for images >= 128 px, else 4
  int64_t depth = 0;        // ViT: 0 = 12 blocks
};

class InputAdapter;

class Model : public nn::Module {
 public:
  // x [B, C, H, W] -> logits [B, num_classes]; when taps is non-null it receives every tap.
  virtual Tensor forward(const Tensor& x, Taps* taps) = 0;
  Tensor forward(const Tensor& x) override { return forward(x, nullptr); }
  // Tap names and shapes for an input of this shape ([B, C, H, W]).
  virtual std::vector<TapInfo> tap_info(const Shape& input) const = 0;
  std::vector<std::string> tap_names(const Shape& input) const;
  virtual std::string family() const = 0;
  // What the model was built with (ViT: patch size and depth resolved from the family defaults).
  virtual const ModelConfig& config() const = 0;
  // The child module that maps the pooled feature to logits: "fc" (ResNet, WRN), "head" (ViT).
  // Linear probes train only it; a new task head re-initialises it.
  virtual std::string head_name() const { return "fc"; }
  // False for a model built with num_classes = 0 (its classifier dropped): its forward returns
  // the pooled feature and it has no "logits" tap, so it cannot be evaluated or trained on labels.
  bool has_classifier() const { return child(head_name()) != nullptr; }
  // The BatchNorm2d whose output (alone or plus a residual) feeds the ReLU that follows the
  // pre-activation tap `tap` ("stage<i>.preact"), or null when the tap has none: what OFD's
  // margin is computed from (mdistiller's get_bn_before_relu). A ViT has none.
  virtual std::shared_ptr<nn::BatchNorm2d> bn_before_relu(const std::string& tap) const {
    (void)tap;
    return nullptr;
  }
  // Fed images of another size or channel count than the model's own (models/input_adapter.h):
  // forward and tap_info then take the data's shape and adapt it first. Null: none.
  void set_input_adapter(std::shared_ptr<const InputAdapter> adapter) { input_adapter_ = std::move(adapter); }
  const std::shared_ptr<const InputAdapter>& input_adapter() const { return input_adapter_; }

 protected:
  Tensor adapted(const Tensor& input) const;  // the input, adapted when an adapter is set
  Shape adapted(const Shape& input) const;

 private:
  std::shared_ptr<const InputAdapter> input_adapter_;
};

// Stores t under name when taps were requested.
inline void put_tap(Taps* taps, const std::string& name, const Tensor& t) {
  if (taps) (*taps)[name] = t;
}

// Output size of a convolution or pooling window along one axis.
inline int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation = 1) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Checks x is [B, in_channels, H, W] with H, W >= min_hw; names the model in the error.
void check_image_input(const std::string& model, const Tensor& x, int64_t in_channels, int64_t min_hw = 1);
void check_image_shape(const std::string& model, const Shape& s, int64_t in_channels, int64_t min_hw = 1);

}  // namespace retort::models
