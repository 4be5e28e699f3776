// batch_norm2d_act: relu?(batch_norm2d(x) + residual?) in one pass (kernels/norm.h's epilogue).
// On the CPU: bitwise the three composed ops in f32 and f64 (outputs, running statistics and
// every gradient: x, weight, bias, residual), training and eval, NCHW and channels-last, with a
// ReLU alone, a residual alone and both; bf16 as the f32 computation rounded once; the op
// harness's cases (f64 finite differences, bf16 and transposed inputs, CUDA parity); an f32
// residual meeting a bf16 activation under autocast; a wrong residual named. On a GPU (suite
// "gpu"): the CUDA kernels (full chip, one block per channel, channels-last) against the CPU.
#include <string>
#include <tuple>
#include <vector>
#include "engine/autocast.h"
#include "engine/memory_format.h"
#include "helpers.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/norm.h"
#include "ops/op_case.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {

struct Case {
  bool residual, relu;
};
const std::vector<Case> kCases = {{false, true}, {true, true}, {true, false}};

struct Run {
  Tensor y, running_mean, running_var, dx, dw, db, dres;
};

Tensor host(const Tensor& t) { return t.defined() ? t.detach().to(Device::cpu()).contiguous() : t; }

// The fused op (fused = true) or the composed ops, forward then backward of a fixed gradient.
// bf16_values: the activations, residual and gradient take bf16-representable values (so an f32
// run sees exactly what a bf16 run reads).
Run run(const Shape& shape, DType dt, Device device, MemoryFormat format, bool training, Case c, bool fused,
        uint64_t seed = 70, bool bf16_values = false) {
  const int64_t C = shape[1];
  auto values = [&](const Tensor& t) { return bf16_values ? t.to(DType::bf16) : t; };
  auto leaf = [&](const Tensor& t, DType d) {
    return to_memory_format(values(t).to(d).to(device), t.dim() == 4 ? format : MemoryFormat::contiguous)
        .detach()
        .requires_grad_(true);
  };
  const DType pd = dt == DType::bf16 ? DType::f32 : dt;  // autocast's f32 parameters for bf16
  Tensor x = leaf(random_tensor(shape, seed, -1, 3), dt);
  auto param = [&](const Tensor& t) { return t.to(pd).to(device).detach().requires_grad_(true); };
  Tensor w = param(random_tensor({C}, seed + 1, 0.5, 1.5)), b = param(random_tensor({C}, seed + 2, -1, 1));
  Tensor r = c.residual ? leaf(random_tensor(shape, seed + 3, -2, 2), dt) : Tensor();
  Tensor rm = random_tensor({C}, seed + 4, -1, 1).to(DType::f32).to(device);
  Tensor rv = random_tensor({C}, seed + 5, 0.5, 2).to(DType::f32).to(device);
  Tensor y;
  if (fused) {
    y = batch_norm2d_act(x, w, b, rm, rv, training, 0.1, 1e-5, r, c.relu);
  } else {
    y = batch_norm2d(x, w, b, rm, rv, training, 0.1, 1e-5);
    if (c.residual) y = add(y, r);
    if (c.relu) y = relu(y);
  }
  y.backward(values(random_tensor(shape, seed + 6, -1, 1)).to(dt).to(device));
  return {host(y), host(rm), host(rv), host(x.grad()), host(w.grad()), host(b.grad()),
          c.residual ? host(r.grad()) : Tensor()};
}

std::vector<std::tuple<const char*, Tensor, Tensor>> parts(const Run& a, const Run& b) {
  std::vector<std::tuple<const char*, Tensor, Tensor>> out = {
      {"output", a.y, b.y},  {"running mean", a.running_mean, b.running_mean},
      {"running var", a.running_var, b.running_var},  {"grad x", a.dx, b.dx},
      {"grad weight", a.dw, b.dw},  {"grad bias", a.db, b.db}};
  if (a.dres.defined()) out.emplace_back("grad residual", a.dres, b.dres);
  return out;
}

const std::vector<Shape> kShapes = {{4, 3, 5, 5}, {8, 6, 4, 4}, {16, 5}};

// The op-harness cases (ops/op_case.h: f64 finite differences, bf16 against f64, transposed
// inputs, CUDA parity): inputs x, weight, bias, residual.
test::OpCase act_case(bool training, bool residual) {
  test::OpCase c;
  c.op = "batch_norm2d_act";
  c.name = std::string("batch_norm2d_act ") + (training ? "training" : "eval") +
           (residual ? ", residual + relu" : ", relu");
  c.fn = [training, residual](const std::vector<Tensor>& in) {
    const int64_t C = in[0].size(1);
    Tensor rm = random_tensor({C}, 35, -1, 1, DType::f32, in[0].device());
    Tensor rv = random_tensor({C}, 36, 0.5, 2, DType::f32, in[0].device());
    return batch_norm2d_act(in[0], in[1], in[2], rm, rv, training, 0.1, 1e-5, residual ? in[3] : Tensor(), true);
  };
  auto shapes = [residual](const Shape& s) {
    std::vector<Shape> out{s, {s[1]}, {s[1]}};
    if (residual) out.push_back(s);
    return out;
  };
  c.shapes = shapes({3, 3, 2, 3});
  for (const Shape& s : std::vector<Shape>{{2, 3, 5, 7}, {8, 16, 9, 9}, {64, 32, 8, 8}, {7, 4, 33, 17}})
    c.gpu_shapes.push_back(shapes(s));
  c.ranges = {{-2, 3}, {0.5, 1.5}, {-1, 1}, {-2, 2}};
  return c;
}
const test::OpCases kActCases("batch_norm_act", {act_case(true, true), act_case(true, false), act_case(false, true)});

}  // namespace

TEST_CASE("gradcheck: batch_norm2d_act training and eval, with and without a residual") {
  test::check_gradients(kActCases);
}

TEST_CASE("bf16 and transposed inputs: batch_norm2d_act") {
  test::check_bf16(kActCases);
  test::check_transposed(kActCases);
}

TEST_CASE("batch_norm2d_act: bitwise the composed batch_norm2d, add and relu in f32 and f64") {
  for (const Shape& shape : kShapes)
    for (DType dt : {DType::f32, DType::f64})
      for (MemoryFormat format : {MemoryFormat::contiguous, MemoryFormat::channels_last})
        for (bool training : {true, false})
          for (const Case& c : kCases) {
            INFO(shape_str(shape) << " " << dtype_name(dt) << " " << memory_format_name(format)
                                  << (training ? " training" : " eval") << " residual " << c.residual << " relu "
                                  << c.relu);
            const Run fused = run(shape, dt, Device::cpu(), format, training, c, true);
            const Run composed = run(shape, dt, Device::cpu(), format, training, c, false);
            for (const auto& [what, a, b] : parts(fused, composed)) {
              INFO(std::string(what));
              CHECK(same_bits(a, b));
            }
          }
}

TEST_CASE("batch_norm2d_act: bf16 is the f32 computation on the same values, rounded once") {
  // Eval mode, so both normalise with the same (running) statistics: the output, the input's and
  // the residual's gradients are the f32 results rounded to bf16, bit for bit (the composed bf16
  // ops round after the normalisation and again after the add, and where the two nearly cancel
  // the sum, and so the ReLU's mask, can differ); the parameter gradients are f32 sums of the
  // same values, in lanes whose width may differ between the two dtypes: within 1e-5.
  for (const Case& c : kCases)
    for (MemoryFormat format : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      INFO("residual " << c.residual << " relu " << c.relu << " " << memory_format_name(format));
      const Run h = run({8, 6, 4, 4}, DType::bf16, Device::cpu(), format, false, c, true, 70, true);
      const Run f = run({8, 6, 4, 4}, DType::f32, Device::cpu(), format, false, c, true, 70, true);
      CHECK(h.y.dtype() == DType::bf16);
      CHECK(h.dw.dtype() == DType::f32);
      CHECK(same_bits(h.y, f.y.to(DType::bf16)));
      CHECK(same_bits(h.dx, f.dx.to(DType::bf16)));
      if (c.residual) CHECK(same_bits(h.dres, f.dres.to(DType::bf16)));
      CHECK(max_rel_error(h.dw.to(DType::f64), f.dw.to(DType::f64)) <= 1e-5);
      CHECK(max_rel_error(h.db.to(DType::f64), f.db.to(DType::f64)) <= 1e-5);
    }
}

TEST_CASE("batch_norm2d_act: under autocast an f32 residual meets a bf16 activation as add would") {
  const Tensor x = random_tensor({4, 3, 4, 4}, 91, -1, 1).to(DType::bf16);
  const Tensor r = random_tensor({4, 3, 4, 4}, 92).to(DType::f32);
  const Tensor w = Tensor::ones({3}), b = Tensor::zeros({3});
  AutocastScope bf16(Precision::bf16);
  const Tensor y = batch_norm2d_act(x, w, b, Tensor(), Tensor(), true, 0.1, 1e-5, r, true);
  CHECK(y.dtype() == DType::f32);
  CHECK(same_bits(y, relu(add(batch_norm2d(x.to(DType::f32), w, b, Tensor(), Tensor(), true), r))));
}

TEST_CASE("batch_norm2d_act: a residual of another shape is named") {
  const Tensor x = Tensor::ones({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(batch_norm2d_act(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5,
                                        Tensor::ones({2, 3, 4, 5}), true),
                       doctest::Contains("batch_norm2d_act: the residual is"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: batch_norm2d_act (outputs and every gradient)") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kActCases);
}

TEST_CASE("cuda batch_norm2d_act: the fused kernels (full chip, block, channels-last) against the CPU") {
  if (test::skip_without_gpu("CUDA test, fused batch norm + residual + ReLU")) return;
  for (auto kernels : {cuda::BatchNormKernels::full_chip, cuda::BatchNormKernels::block_per_channel}) {
    cuda::BatchNormKernels before{};
    RETORT_CUDA_CALL(before = cuda::batch_norm_kernels());
    RETORT_CUDA_CALL(cuda::set_batch_norm_kernels(kernels));
    for (const Shape& shape : std::vector<Shape>{{64, 64, 32, 32}, {8, 40, 7, 7}, {16, 5}})
      for (DType dt : {DType::f32, DType::bf16})
        for (MemoryFormat format : {MemoryFormat::contiguous, MemoryFormat::channels_last})
          for (bool training : {true, false})
            for (const Case& c : kCases) {
              INFO(shape_str(shape) << " " << dtype_name(dt) << " " << memory_format_name(format)
                                    << (training ? " training" : " eval") << " residual " << c.residual);
              const Run got = run(shape, dt, Device::cuda(), format, training, c, true);
              const Run want = run(shape, dt, Device::cpu(), format, training, c, true);
              // tests/ops/test_norm_gpu.cpp's tolerances: op_tolerance, parameter sums 1e-4 in f32.
              for (const auto& [what, a, b] : parts(got, want)) {
                INFO(std::string(what));
                const bool param = std::string(what) == "grad weight" || std::string(what) == "grad bias";
                const double tol = param && dt == DType::f32 ? 1e-4 : test::op_tolerance(dt);
                CHECK(max_rel_error(a.to(DType::f64), b.to(DType::f64)) <= tol);
              }
            }
    RETORT_CUDA_CALL(cuda::set_batch_norm_kernels(before));
  }
}
}  // TEST_SUITE("gpu")
