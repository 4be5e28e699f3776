// Random tensors (rand, randn) and dropout on the counter-based Generator: each call reserves
// its counters with gen.advance, so CPU and CUDA draw the same values from the same state.
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/random.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/random_draws.h"
#include "engine/kernel_call.h"

namespace retort {
namespace {
void check_random_dtype(DType dtype, const char* op) {
  RETORT_CHECK(is_floating(dtype), "{}: dtype must be floating (f32, f64 or bf16), got {}", op, dtype_name(dtype));
}
}  // namespace

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  RETORT_PROFILE_OP("rand");
  check_random_dtype(dtype, "rand");
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t base = gen.advance(uint64_t(n));
  RETORT_KERNEL(device, uniform, dtype, out.raw_data(), n, gen.seed(), base);
  return out;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  RETORT_PROFILE_OP("randn");
  check_random_dtype(dtype, "randn");
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t base = gen.advance(normal_counters(n));
  RETORT_KERNEL(device, normal, dtype, out.raw_data(), n, gen.seed(), base);
  return out;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  RETORT_PROFILE_OP("dropout", x);
  RETORT_CHECK(x.defined(), "dropout: the input is undefined");
  RETORT_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got {}", p);
  RETORT_CHECK(is_floating(x.dtype()), "dropout: the input must be floating (f32, f64 or bf16), got {}", x.str());
  if (!training || p == 0.0) return x;  // identity: no draw, the generator is not advanced
  const int64_t n = x.numel();
  const uint64_t base = gen.advance(uint64_t(n));
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;  // p == 1 keeps nothing
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mask = Tensor::empty(x.shape(), DType::u8, x.device());
  Layout lx = make_layout(x.shape(), x.strides());
  RETORT_KERNEL(x.device(), dropout, x.dtype(), x.raw_data(), lx, out.raw_data(), mask.data<uint8_t>(), n,
                gen.seed(), base, p, scale);
  if (needs_grad({&x})) {
    record(out, "dropout", {x}, [mask, scale](const Tensor& g) {
      Tensor gi = Tensor::empty(g.shape(), g.dtype(), g.device());
      Layout lg = make_layout(g.shape(), g.strides());
      RETORT_KERNEL(g.device(), dropout_backward, g.dtype(), g.raw_data(), lg, mask.data<uint8_t>(), scale,
                    gi.raw_data(), gi.numel());
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

}  // namespace retort
