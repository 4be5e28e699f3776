// Initialisation schemes: host draws from the Generator, one copy into the tensor.
#include "engine/nn/init.h"
#include <cmath>
#include <functional>
#include <vector>
#include "engine/error.h"

namespace retort::nn {

namespace {
thread_local bool g_skip_init = false;

void fill_with(Tensor& t, const std::function<double()>& draw) {
  RETORT_CHECK(t.defined(), "init: tensor is undefined");
  if (g_skip_init) return;
  std::vector<double> v(size_t(t.numel()));
  for (auto& x : v) x = draw();
  t.copy_(Tensor::from_vector(v, t.shape(), t.dtype()));
}

int64_t receptive_field(const Tensor& w) {
  RETORT_CHECK(w.dim() >= 2, "fan in/out needs a tensor with at least 2 dims, got {}", w.str());
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}
}  // namespace

bool init_skipped() { return g_skip_init; }
SkipInitGuard::SkipInitGuard() : prev_(g_skip_init) { g_skip_init = true; }
SkipInitGuard::~SkipInitGuard() { g_skip_init = prev_; }

int64_t fan_in(const Tensor& w) { return w.size(1) * receptive_field(w); }
int64_t fan_out(const Tensor& w) { return w.size(0) * receptive_field(w); }

void uniform_(Tensor& t, Generator& gen, double lo, double hi) {
  fill_with(t, [&] { return lo + (hi - lo) * gen.uniform(); });
}

void normal_(Tensor& t, Generator& gen, double mean, double std) {
  fill_with(t, [&] { return mean + std * gen.normal(); });
}

void trunc_normal_(Tensor& t, Generator& gen, double mean, double std, double lo, double hi) {
  RETORT_CHECK(lo < hi && lo <= mean + 3 * std && hi >= mean - 3 * std,
               "trunc_normal_: bounds [{}, {}] leave almost no mass of N({}, {})", lo, hi, mean, std);
  fill_with(t, [&] {
    for (;;) {
      double x = mean + std * gen.normal();
      if (x >= lo && x <= hi) return x;
    }
  });
}

void constant_(Tensor& t, double value) {
  RETORT_CHECK(t.defined(), "constant_: tensor is undefined");
  if (!g_skip_init) t.fill_(value);
}

static double leaky_relu_gain(double a) { return std::sqrt(2.0 / (1.0 + a * a)); }

void kaiming_uniform_(Tensor& t, Generator& gen, double a, FanMode mode) {
  double fan = double(mode == FanMode::fan_in ? fan_in(t) : fan_out(t));
  double bound = leaky_relu_gain(a) * std::sqrt(3.0 / fan);
  uniform_(t, gen, -bound, bound);
}

void kaiming_normal_(Tensor& t, Generator& gen, double a, FanMode mode) {
  double fan = double(mode == FanMode::fan_in ? fan_in(t) : fan_out(t));
  normal_(t, gen, 0.0, leaky_relu_gain(a) / std::sqrt(fan));
}

}  // namespace retort::nn
