// clip_grad_norm: norm from sum(g * g) per gradient, scaling through mul + copy_.
#include "engine/optim/clip.h"
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  RETORT_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be non-negative, got {}", max_norm);
  NoGradGuard no_grad;
  double total_sq = 0.0;
  for (const auto& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    total_sq += sum(mul(g, g)).item();
  }
  double norm = std::sqrt(total_sq);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  double scale = max_norm / (norm + 1e-6);
  for (const auto& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    Tensor scaled = mul(g, scale);
    // A gradient may be a broadcast view (stride 0) or shared: only write dense ones in place.
    if (g.is_contiguous()) g.copy_(scaled);
    else {
      Tensor handle = p;
      handle.set_grad(scaled);
    }
  }
  return norm;
}

}  // namespace retort
