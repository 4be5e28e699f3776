// Shape adapters between student and teacher taps: tokens->map, pooling, 1x1 conv+BN, linear,
// and the pairing logic that chooses them (or explains why two taps cannot be paired).
#include "transfer/adapters.h"
#include <algorithm>
#include <cmath>
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/conv_reg.h"

namespace retort::transfer {

PoolMode parse_pool_mode(const std::string& s, const std::string& where) {
  if (s == "avg" || s == "average") return PoolMode::average;
  if (s == "max") return PoolMode::max;
  fail("{}: pool must be \"avg\" or \"max\", got \"{}\"", where, s);
}

Tensor pool_to(const Tensor& x, int64_t h, int64_t w, PoolMode mode) {
  RETORT_CHECK(x.dim() == 4 && h > 0 && w > 0 && x.size(2) >= h && x.size(3) >= w,
               "pool_to: cannot pool {} down to {}x{}", x.str(), h, w);
  const int64_t H = x.size(2), W = x.size(3);
  if (H == h && W == w) return x;
  if (mode == PoolMode::average) return adaptive_avg_pool2d(x, {h, w});
  // max: stride floor(H/h) and window H - (h-1)*stride give exactly h outputs, covering all rows.
  const int64_t sh = H / h, sw = W / w;
  return max_pool2d(x, {H - (h - 1) * sh, W - (w - 1) * sw}, {sh, sw});
}

TokensToMap::TokensToMap(int64_t tokens_, int64_t dim_, int64_t prefix_) : tokens(tokens_), dim(dim_), prefix(prefix_) {
  const int64_t patches = tokens - prefix;
  side = patches > 0 ? int64_t(std::llround(std::sqrt(double(patches)))) : 0;
  RETORT_CHECK(prefix >= 1 && patches > 0 && side * side == patches,
               "cannot turn {} tokens ({} prefix token(s) + {} patch tokens) into a square token grid: {} is not a "
               "square",
               tokens, prefix, patches, patches);
}
std::string TokensToMap::extra_repr() const { return fmt::format("{} tokens -> {}x{} grid, dim {}", tokens, side, side, dim); }
Tensor TokensToMap::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() == 3 && x.size(1) == tokens && x.size(2) == dim, "TokensToMap: input {} is not [B, {}, {}]",
               x.str(), tokens, dim);
  // drop the prefix tokens; token prefix + r*side + c is grid cell (r, c)
  return x.slice(1, prefix, tokens).transpose(1, 2).contiguous().reshape({x.size(0), dim, side, side});
}

std::string SpatialPool::extra_repr() const {
  return fmt::format("{} pool to {}x{}", mode == PoolMode::average ? "adaptive avg" : "max", height, width);
}

ChannelProjection::ChannelProjection(int64_t in_channels, int64_t out_channels, Generator& gen, bool batch_norm) {
  conv = register_module("conv", std::make_shared<nn::Conv2d>(in_channels, out_channels,
                                                               nn::Conv2dSpec{.kernel = 1, .bias = false}, gen));
  if (batch_norm) bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(out_channels));
}
Tensor ChannelProjection::forward(const Tensor& x) {
  Tensor y = conv->forward(x);
  return bn ? bn->forward(y) : y;
}

TapKind tap_kind(const models::TapInfo& tap, const std::string& side) {
  switch (tap.shape.size()) {
    case 4: return TapKind::map;
    case 3: return TapKind::tokens;
    case 2: return TapKind::vector;
    default:
      fail("{} tap '{}' has shape {}: expected a map [B, C, H, W], ViT tokens [B, N, D] or a vector [B, D]", side,
           tap.name, shape_str(tap.shape));
  }
}

Shape tap_map_shape(const models::TapInfo& tap, const std::string& side) {
  TapKind kind = tap_kind(tap, side);
  RETORT_CHECK(kind != TapKind::vector, "{} tap '{}' is a vector {}, not a spatial map or token sequence", side,
               tap.name, shape_str(tap.shape));
  if (kind == TapKind::map) return tap.shape;
  const int64_t prefix = std::max<int64_t>(tap.prefix_tokens, 1);
  const int64_t patches = tap.shape[1] - prefix;
  const int64_t s = patches > 0 ? int64_t(std::llround(std::sqrt(double(patches)))) : 0;
  RETORT_CHECK(patches > 0 && s * s == patches,
               "{} tap '{}' {} holds {} tokens; minus the {} that leaves {}, which is not a square, so the "
               "tokens do not form a square patch grid",
               side, tap.name, shape_str(tap.shape), tap.shape[1],
               prefix == 1 ? "CLS token" : "CLS and distillation tokens", patches);
  return {tap.shape[0], tap.shape[2], s, s};
}

std::shared_ptr<nn::Module> make_to_map(const models::TapInfo& tap, const std::string& side) {
  Shape m = tap_map_shape(tap, side);  // checks
  if (tap_kind(tap, side) == TapKind::map) return std::make_shared<nn::Identity>();
  (void)m;
  return std::make_shared<TokensToMap>(tap.shape[1], tap.shape[2], std::max<int64_t>(tap.prefix_tokens, 1));
}

TapAdapter make_tap_adapter(const models::TapInfo& s, const models::TapInfo& t, Generator& gen,
                            const AdapterOptions& o) {
  TapAdapter a;
  a.student = std::make_shared<nn::Sequential>();
  a.teacher = std::make_shared<nn::Sequential>();
  const TapKind ks = tap_kind(s, o.loss + ": student"), kt = tap_kind(t, o.loss + ": teacher");
  const bool s_vec = ks == TapKind::vector, t_vec = kt == TapKind::vector;
  RETORT_CHECK(s_vec == t_vec,
               "{}: cannot pair student tap '{}' {} with teacher tap '{}' {}: one is a spatial map/token sequence and "
               "the other a vector; pick taps of the same kind (e.g. 'pooled' with 'pooled', or 'stage2' with "
               "'stage2'/'tokens.<i>')",
               o.loss, s.name, shape_str(s.shape), t.name, shape_str(t.shape));
  if (s_vec) {
    const int64_t ds = s.shape[1], dt = t.shape[1];
    if (ds != dt || o.always_project) a.student->push_back(std::make_shared<nn::Linear>(ds, dt, gen));
    if (o.relu) a.student->push_back(std::make_shared<nn::ReLU>());
    a.matched = {s.shape[0], dt};
    return a;
  }
  const Shape ms = tap_map_shape(s, o.loss + ": student"), mt = tap_map_shape(t, o.loss + ": teacher");
  if (ks == TapKind::tokens) a.student->push_back(make_to_map(s, "student"));
  if (kt == TapKind::tokens) a.teacher->push_back(make_to_map(t, "teacher"));
  if (o.conv_reg) {
    const std::string why = conv_reg_unsupported(ms, mt);
    RETORT_CHECK(why.empty(), "{}: student tap '{}' {} -> teacher tap '{}' {}: {}; pool the larger map instead "
                 "(regressor = \"projection\")", o.loss, s.name, shape_str(s.shape), t.name, shape_str(t.shape), why);
    a.student->push_back(std::make_shared<ConvReg>(ms, mt, gen, o.relu));
    a.matched = mt;
    return a;
  }
  const int64_t h = std::min(ms[2], mt[2]), w = std::min(ms[3], mt[3]);
  if (ms[2] != h || ms[3] != w) a.student->push_back(std::make_shared<SpatialPool>(h, w, o.pool));
  if (mt[2] != h || mt[3] != w) a.teacher->push_back(std::make_shared<SpatialPool>(h, w, o.pool));
  if (ms[1] != mt[1] || o.always_project)
    a.student->push_back(std::make_shared<ChannelProjection>(ms[1], mt[1], gen, o.batch_norm));
  if (o.relu) a.student->push_back(std::make_shared<nn::ReLU>());
  a.matched = {ms[0], mt[1], h, w};
  return a;
}

models::TapInfo find_tap(const models::Model& model, const std::string& tap, const Shape& input,
                         const std::string& loss, const std::string& side) {
  auto infos = model.tap_info(input);
  std::string names;
  for (const auto& i : infos) {
    if (i.name == tap) return i;
    names += (names.empty() ? "" : ", ") + i.name;
  }
  fail("{}: the {} ({}) has no tap '{}'; its taps are: {}", loss, side, model.family(), tap, names);
}

}  // namespace retort::transfer
