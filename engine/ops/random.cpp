// Random tensors (rand, randn) and dropout on the counter-based Generator: each call reserves
// its counters with gen.advance, so CPU and CUDA draw the same values from the same state.
// Dropout keeps a channels-last input channels-last and draws its mask in memory (NHWC) order,
// so the same generator state drops other logical elements than for the NCHW copy of the input.
#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/error.h"
#include "engine/memory_format.h"
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
  // Output, mask and input gradient keep x's memory format; the mask is drawn in memory order.
  const MemoryFormat f = suggest_memory_format(x);
  Tensor out = empty_in_format(x.shape(), f, x.dtype(), x.device());
  Tensor mask = empty_in_format(x.shape(), f, DType::u8, x.device());
  Layout lx = layout_in_format(make_layout(x.shape(), x.strides()), f);
  RETORT_KERNEL(x.device(), dropout, x.dtype(), x.raw_data(), lx, out.raw_data(), mask.data<uint8_t>(), n,
                gen.seed(), base, p, scale);
  if (needs_grad({&x})) {
    record(out, "dropout", {x}, [mask, scale, f](const Tensor& g) {
      Tensor gi = empty_in_format(g.shape(), f, g.dtype(), g.device());
      Layout lg = layout_in_format(make_layout(g.shape(), g.strides()), f);
      RETORT_KERNEL(g.device(), dropout_backward, g.dtype(), g.raw_data(), lg, mask.data<uint8_t>(), scale,
                    gi.raw_data(), gi.numel());
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

}  // namespace retort
