// Shape adapters between a student tap and a teacher tap, used by the feature-matching losses
// (FitNets, FSP, ...). Four building blocks, each an nn::Module:
//   TokensToMap        ViT tokens [B, 1+h*w, D] -> spatial map [B, D, h, w] (CLS dropped, the
//                      patch tokens reshaped row-major into the h x w grid; h*w must be square)
//   SpatialPool        [B, C, H, W] -> [B, C, h, w] by adaptive average pooling (default) or
//                      max pooling (stride floor(H/h), window H - (h-1)*stride: exactly h outputs)
//   ChannelProjection  [B, C_s, h, w] -> [B, C_t, h, w]: 1x1 conv (no bias) + BatchNorm2d, the
//                      FitNets / RepDistiller ConvReg regressor
//   nn::Linear         [B, d_s] -> [B, d_t] for vectors ("pooled", "cls")
// With AdapterOptions::conv_reg the maps go through RepDistiller's ConvReg instead (learned
// resampling, transfer/conv_reg.h). make_tap_adapter() looks at the two TapInfo shapes and assembles the student-side chain
// (learned) and the teacher-side chain (parameter-free), or throws a retort::Error that says
// why the pairing cannot work (a spatial map against a vector, a token count minus CLS that is
// not a square, a tap of another rank).
#pragma once
#include <memory>
#include <string>
#include "engine/nn/layers.h"
#include "engine/random.h"
#include "models/model.h"

namespace retort::transfer {

enum class PoolMode { average, max };
PoolMode parse_pool_mode(const std::string& s, const std::string& where);  // "avg" | "max"

// Resizes a map to h x w (h <= H, w <= W) by pooling; identity when the size already matches.
Tensor pool_to(const Tensor& x, int64_t h, int64_t w, PoolMode mode);

class TokensToMap : public nn::Module {
 public:
  // tokens includes the `prefix` tokens before the patches (CLS, and DeiT's distillation token);
  // throws when tokens - prefix is not a square
  TokensToMap(int64_t tokens, int64_t dim, int64_t prefix = 1);
  std::string type_name() const override { return "TokensToMap"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  int64_t tokens, dim, side;
  int64_t prefix = 1;  // tokens before the patches: CLS, or CLS and the distillation token
};

class SpatialPool : public nn::Module {
 public:
  SpatialPool(int64_t height, int64_t width, PoolMode mode) : height(height), width(width), mode(mode) {}
  std::string type_name() const override { return "SpatialPool"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override { return pool_to(x, height, width, mode); }
  int64_t height, width;
  PoolMode mode;
};

class ChannelProjection : public nn::Module {
 public:
  ChannelProjection(int64_t in_channels, int64_t out_channels, Generator& gen, bool batch_norm = true);
  std::string type_name() const override { return "ChannelProjection"; }
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;  // null without batch_norm
};

// What a tap's shape (batch dim included) is: a spatial map [B,C,H,W], ViT tokens [B,N,D] or a
// vector [B,D].
enum class TapKind { map, tokens, vector };
TapKind tap_kind(const models::TapInfo& tap, const std::string& side);  // side: "student"/"teacher"
// The [B, C, H, W] map shape a map or token tap becomes (throws for vectors and bad token counts).
Shape tap_map_shape(const models::TapInfo& tap, const std::string& side);
// The module turning a map or token tap into a map (Identity for maps).
std::shared_ptr<nn::Module> make_to_map(const models::TapInfo& tap, const std::string& side);

struct AdapterOptions {
  std::string loss = "adapter";  // names the loss in error messages
  PoolMode pool = PoolMode::average;
  bool always_project = true;    // project even when channels/dims already match (FitNets regressor)
  bool batch_norm = true;        // BN after the 1x1 conv
  // RepDistiller's ConvReg for maps (transfer/conv_reg.h: the resampling is learned, no pooling;
  // BN always), and a ReLU after the regressor (maps and vectors) when relu.
  bool conv_reg = false;
  bool relu = false;
};

// student(f_s) and teacher(f_t) have the same shape. The student chain holds every learned
// parameter; the teacher chain only reshapes/pools.
struct TapAdapter {
  std::shared_ptr<nn::Sequential> student;
  std::shared_ptr<nn::Sequential> teacher;
  Shape matched;  // the common shape for the queried batch size
};

TapAdapter make_tap_adapter(const models::TapInfo& student, const models::TapInfo& teacher, Generator& gen,
                            const AdapterOptions& options = {});

// The TapInfo of `tap` in `model` for `input`, or an error listing the model's taps.
models::TapInfo find_tap(const models::Model& model, const std::string& tap, const Shape& input,
                         const std::string& loss, const std::string& side);

}  // namespace retort::transfer
