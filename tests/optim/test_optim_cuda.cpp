// CUDA parity of the fused optimizer kernels: SGD (momentum, nesterov, weight decay) and
// AdamW run on the GPU and on the CPU from the same random start and gradients for a few
// steps; parameters and state must agree (f32 within 1e-5 relative, f64 within 1e-12).
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "helpers.h"

using namespace retort;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
template <typename Opt, typename Options>
void check_parity(const Shape& shape, DType dtype, double wd, Options options) {
  INFO("shape " << shape_str(shape) << " " << dtype_name(dtype) << " wd " << wd);
  Tensor cpu_p = random_tensor(shape, 1, -1, 1, dtype);
  Tensor gpu_p = cpu_p.to(Device::cuda());
  cpu_p.requires_grad_(true);
  gpu_p.requires_grad_(true);
  auto group = [&](Tensor p) {
    ParamGroup g;
    g.params = {p};
    g.lr = 0.05;
    g.weight_decay = wd;
    return g;
  };
  Opt cpu_opt({group(cpu_p)}, options), gpu_opt({group(gpu_p)}, options);
  for (uint64_t step = 0; step < 3; ++step) {
    Tensor g = random_tensor(shape, 10 + step, -1, 1, dtype);
    cpu_p.set_grad(g);
    gpu_p.set_grad(g.to(Device::cuda()));
    cpu_opt.step();
    gpu_opt.step();
  }
  const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
  CHECK(gpu_p.device().is_cuda());
  CHECK(max_rel_error(gpu_p.to(Device::cpu()), cpu_p) <= tol);
  OptimizerState sc = cpu_opt.export_state(), sg = gpu_opt.export_state();
  REQUIRE(sc.tensors.size() == sg.tensors.size());
  for (size_t i = 0; i < sc.tensors.size(); ++i) {
    INFO(sc.tensors[i].first);
    CHECK(sg.tensors[i].second.device().is_cuda());
    CHECK(max_rel_error(sg.tensors[i].second.to(Device::cpu()), sc.tensors[i].second) <= tol);
  }
  CHECK(sc.scalars == sg.scalars);
}
const std::vector<Shape> kShapes = {{1}, {7}, {33, 5}, {3, 17, 19}, {70001}};
}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: sgd_update") {
  RETORT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (const auto& shape : kShapes) {
      check_parity<SGD>(shape, dt, 0.0, SgdOptions{});
      check_parity<SGD>(shape, dt, 0.01, SgdOptions{0.9, false});
      check_parity<SGD>(shape, dt, 0.01, SgdOptions{0.9, true});
    }
}

TEST_CASE("cuda parity: adamw_update") {
  RETORT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (const auto& shape : kShapes) {
      check_parity<AdamW>(shape, dt, 0.0, AdamWOptions{});
      check_parity<AdamW>(shape, dt, 0.05, AdamWOptions{0.8, 0.99, 1e-6});
    }
}
}
