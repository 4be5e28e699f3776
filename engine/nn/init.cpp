// Initialisation schemes: host draws from the Generator, one copy into the tensor.
#include "engine/nn/init.h"
#include <cmath>
#include <vector>
#include "engine/error.h"

namespace retort::nn {

namespace {
thread_local bool g_skip_init = false;

// Element i gets draw(i); draws depend only on (seed, counter), so the fill runs in parallel
// and gives the same bits as a sequential loop. Values are made in f32 (f64 for f64 tensors)
// on the host, then copied (and converted) into t.
template <class Draw>
void fill_indexed(Tensor& t, const Draw& draw) {
  RETORT_CHECK(t.defined(), "init: tensor is undefined");
  if (g_skip_init) return;
  const int64_t n = t.numel();
  Tensor host = Tensor::empty(t.shape(), t.dtype() == DType::f64 ? DType::f64 : DType::f32);
  if (host.dtype() == DType::f64) {
    double* p = host.data<double>();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) p[i] = draw(i);
  } else {
    float* p = host.data<float>();
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) p[i] = float(draw(i));
  }
  t.copy_(host);
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
  const uint64_t seed = gen.seed(), base = gen.advance(uint64_t(t.numel()));
  fill_indexed(t, [=](int64_t i) { return lo + (hi - lo) * uniform01(seed, base + uint64_t(i)); });
}

void normal_(Tensor& t, Generator& gen, double mean, double std) {
  const uint64_t seed = gen.seed(), base = gen.advance(uint64_t(t.numel()));
  fill_indexed(t, [=](int64_t i) { return mean + std * normal01(seed, base + uint64_t(i)); });
}

void trunc_normal_(Tensor& t, Generator& gen, double mean, double std, double lo, double hi) {
  RETORT_CHECK(lo < hi && lo <= mean + 3 * std && hi >= mean - 3 * std,
               "trunc_normal_: bounds [{}, {}] leave almost no mass of N({}, {})", lo, hi, mean, std);
  const uint64_t seed = gen.seed(), base = gen.advance(uint64_t(t.numel()));
  fill_indexed(t, [=](int64_t i) {
    // Redraw k uses a seed derived from k, so every element's sequence is its own.
    for (uint64_t k = 0;; ++k) {
      double x = mean + std * normal01(k == 0 ? seed : hash64(seed, k), base + uint64_t(i));
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
