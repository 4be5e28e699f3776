// Full-chip CUDA batch norm (kernels/cuda/bn_chip_*.cu). Here, on the CPU: its work split
// (kernels/bn_tiling.h) replayed element by element (each value visited once, at the offset and
// channel a division would give) and its statistics replayed from the same shifted partial sums
// against the CPU reference. On a GPU (TEST_SUITE "gpu", skipped without one): parity with the
// CPU reference at sizes with many blocks per channel and odd tails (training forward with saved
// and running statistics, eval forward, backward; f32, bf16, f64), the one-block-per-channel
// kernels (RETORT_CUDA_BN=block) through set_batch_norm_kernels, an unaligned input, and
// bitwise determinism.
#include <array>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>
#include "engine/kernel_call.h"
#include "helpers.h"
#include "kernels/bn_tiling.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/norm.h"
#include "ops/op_test_util.h"

using namespace retort;
namespace bn = retort::kernels::bn;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {

struct Nchw {
  int64_t N, C, S;
};
// Sizes with many tiles per channel, a single tile, odd S (no 4-element units), S = 1 (BatchNorm1d).
const std::vector<Nchw> kSplitShapes = {{64, 32, 1024}, {64, 256, 64}, {3, 5, 49},  {2, 3, 7},
                                        {5, 2, 1},      {1, 3, 4099},  {7, 4, 561}, {4, 6, 36}};
const std::vector<int64_t> kTargetBlocks = {1, 5, 792, 1056, int64_t(1) << 20};

std::vector<int> vecs_for(int64_t S) { return S % 4 == 0 ? std::vector<int>{1, 4} : std::vector<int>{1}; }

// Visits every (channel, tile, thread) of the plan; visit(c, offset) for each element.
template <typename Visit>
void replay_reduce(const bn::ReducePlan& p, Visit visit) {
  for (int64_t c = 0; c < p.C; ++c)
    for (int64_t t = 0; t < p.tiles; ++t)
      for (int tid = 0; tid < bn::kThreads; ++tid)
        for (bn::PlaneWalk at(p, c, p.tile_begin(t) + tid); at.u < p.tile_end(t); at.advance(p))
          for (int k = 0; k < p.vec; ++k) visit(c, t, tid, at.offset + k, at);
}

}  // namespace

TEST_CASE("batch_norm full-chip split: every value of a channel once, in non-empty tiles, at the right offset") {
  for (const Nchw& s : kSplitShapes)
    for (int vec : vecs_for(s.S))
      for (int64_t target : kTargetBlocks) {
        const bn::ReducePlan p = bn::make_reduce_plan(s.N, s.C, s.S, vec, target);
        INFO("N " << s.N << " C " << s.C << " S " << s.S << " vec " << vec << " target " << target);
        REQUIRE(p.tiles >= 1);
        CHECK(p.tiles <= bn::kMaxTiles);
        CHECK((p.tiles - 1) * p.units_per_tile < p.units);  // the last tile is not empty
        CHECK(p.tiles * p.units_per_tile >= p.units);
        std::vector<int> visits(size_t(s.N * s.C * s.S), 0);
        int64_t misplaced = 0, outside = 0;
        replay_reduce(p, [&](int64_t c, int64_t, int, int64_t offset, const bn::PlaneWalk& at) {
          const int64_t j = at.u * vec, n = j / s.S;  // the division the walk avoids
          misplaced += at.offset != (n * s.C + c) * s.S + (j - n * s.S) || at.s != j - n * s.S;
          if (offset < 0 || offset >= int64_t(visits.size()))
            ++outside;
          else
            ++visits[size_t(offset)];
        });
        CHECK(misplaced == 0);
        CHECK(outside == 0);
        int64_t wrong = 0;
        for (int v : visits) wrong += v != 1;
        CHECK(wrong == 0);
      }
}

TEST_CASE("batch_norm full-chip split: the elementwise walk tracks each unit's channel without a division") {
  for (const Nchw& s : kSplitShapes)
    for (int vec : vecs_for(s.S))
      for (int64_t max_blocks : {int64_t(1), int64_t(3), int64_t(1056), int64_t(1) << 20}) {
        const bn::ElementPlan p = bn::make_element_plan(s.N, s.C, s.S, vec, max_blocks);
        INFO("N " << s.N << " C " << s.C << " S " << s.S << " vec " << vec << " max_blocks " << max_blocks);
        CHECK(p.blocks <= max_blocks);
        std::vector<int> visits(size_t(p.total_units), 0);
        int64_t wrong_channel = 0;
        for (int64_t thread = 0; thread < p.stride; ++thread)
          for (bn::ChannelWalk at(p, thread); at.u < p.total_units; at.advance(p)) {
            const int64_t j = at.u * vec;
            wrong_channel += at.c != (j / s.S) % s.C || at.s != j % s.S;
            ++visits[size_t(at.u)];
          }
        CHECK(wrong_channel == 0);
        int64_t wrong = 0;
        for (int v : visits) wrong += v != 1;
        CHECK(wrong == 0);
      }
}

TEST_CASE("batch_norm full-chip split: statistics and parameter-gradient sums replayed match the CPU kernel") {
  for (const Nchw& s : std::vector<Nchw>{{3, 5, 49}, {16, 4, 64}, {2, 3, 7}, {32, 2, 1024}}) {
    INFO("N " << s.N << " C " << s.C << " S " << s.S);
    const Shape shape{s.N, s.C, s.S};
    // Offset values (mean about 2): the shifted sums must not lose the spread to the mean.
    const std::vector<double> x = random_tensor(shape, 7, -1, 5).to_vector();
    const std::vector<double> g = random_tensor(shape, 8, -1, 1).to_vector();
    std::vector<float> xf(x.begin(), x.end()), gf(g.begin(), g.end()), y(x.size());
    std::vector<float> mean(size_t(s.C)), var(size_t(s.C)), invstd(size_t(s.C)), gw(size_t(s.C)), gb(size_t(s.C));
    cpu::batch_norm_forward(DType::f32, xf.data(), nullptr, nullptr, s.N, s.C, s.S, false, true, 1e-5, {}, mean.data(),
                            var.data(), invstd.data(), y.data());
    cpu::batch_norm_backward(DType::f32, gf.data(), xf.data(), nullptr, mean.data(), invstd.data(), s.N, s.C, s.S,
                             false, true, nullptr, nullptr, gw.data(), gb.data(), nullptr);
    for (int vec : vecs_for(s.S)) {
      const bn::ReducePlan p = bn::make_reduce_plan(s.N, s.C, s.S, vec, 792);
      // Per (channel, tile) shifted sums as the blocks form them, then merged in tile order.
      std::vector<double> s1(size_t(s.C * p.tiles)), s2(s1.size()), sg(s1.size()), sgx(s1.size());
      replay_reduce(p, [&](int64_t c, int64_t t, int, int64_t offset, const bn::PlaneWalk&) {
        const double d = double(xf[size_t(offset)]) - double(xf[size_t(c * s.S)]);
        const size_t k = size_t(c * p.tiles + t);
        s1[k] += d;
        s2[k] += d * d;
        sg[k] += double(gf[size_t(offset)]);
        sgx[k] += double(gf[size_t(offset)]) * (double(xf[size_t(offset)]) - double(mean[size_t(c)]));
      });
      for (int64_t c = 0; c < s.C; ++c) {
        double a = 0, b = 0, dg = 0, dgx = 0;
        for (int64_t t = 0; t < p.tiles; ++t) {
          const size_t k = size_t(c * p.tiles + t);
          a += s1[k], b += s2[k], dg += sg[k], dgx += sgx[k];
        }
        double m, v;
        bn::shifted_moments(double(xf[size_t(c * s.S)]), a, b, s.N * s.S, m, v);
        INFO("channel " << c << " vec " << vec << " tiles " << p.tiles);
        CHECK(std::abs(m - mean[size_t(c)]) <= 1e-6 * (1 + std::abs(m)));
        CHECK(std::abs(v - var[size_t(c)]) <= 1e-6 * (1 + v));
        CHECK(std::abs(dg - gb[size_t(c)]) <= 1e-5 * (1 + std::abs(dg)));
        CHECK(std::abs(dgx * invstd[size_t(c)] - gw[size_t(c)]) <= 1e-5 * (1 + std::abs(gw[size_t(c)])));
      }
    }
  }
}

TEST_CASE("batch_norm full-chip split: resnet8x4 at batch 64 on a 132-SM H100 fills the chip") {
  // The statistics kernels use 40 registers a thread (ptxas, sm_90): 6 blocks of 256 per SM, 792
  // on 132 SMs. {C, S, tiles per channel}: C x tiles blocks of at least 1024 values each.
  const std::vector<std::array<int64_t, 3>> layers = {{32, 1024, 24}, {64, 1024, 12}, {128, 256, 6}, {256, 64, 3}};
  for (const auto& [C, S, tiles] : layers) {
    const bn::ReducePlan p = bn::make_reduce_plan(64, C, S, 4, 132 * 6);
    CHECK(p.tiles == tiles);
    CHECK(C * p.tiles <= 132 * 6);
    CHECK(p.units_per_tile * p.vec >= bn::kMinTileElements);
  }
}

namespace {

struct BnInputs {
  Tensor x, w, b, running_mean, running_var, g;
};
BnInputs bn_inputs(const Shape& shape, uint64_t seed) {
  const int64_t C = shape[1];
  return {random_tensor(shape, seed, -1, 5),     random_tensor({C}, seed + 1, 0.5, 1.5),
          random_tensor({C}, seed + 2, -1, 1),   random_tensor({C}, seed + 3, -1, 1),
          random_tensor({C}, seed + 4, 0.5, 2),  random_tensor(shape, seed + 5, -1, 1)};
}

// What batch_norm2d (forward, then backward of g) leaves, and the statistics the forward kernel
// saves (mean, var, invstd: called directly, the op keeps them for its backward), on the host.
struct BnRun {
  Tensor y, running_mean, running_var, dx, dw, db, mean, var, invstd;
};

Tensor on_host(const Tensor& t) { return t.detach().to(Device::cpu()); }

void run_forward_kernel(const BnInputs& in, DType dt, Device device, bool training, BnRun& r) {
  const Shape& shape = in.x.shape();
  const int64_t N = shape[0], C = shape[1], S = in.x.numel() / (N * C);
  const DType sd = dt == DType::f64 ? DType::f64 : DType::f32;
  // The parameters as the op hands them to the kernel: their dt values in the statistics dtype.
  Tensor x = in.x.to(dt).to(device), w = in.w.to(dt).to(sd).to(device), b = in.b.to(dt).to(sd).to(device);
  // Eval mode reads the running statistics, which the op keeps in f32.
  Tensor mean = in.running_mean.to(DType::f32).to(sd).to(device);
  Tensor var = in.running_var.to(DType::f32).to(sd).to(device);
  Tensor invstd = Tensor::empty({C}, sd, device), y = Tensor::empty(shape, dt, device);
  RETORT_KERNEL(device, batch_norm_forward, dt, x.raw_data(), w.raw_data(), b.raw_data(), N, C, S, false, training,
                1e-5, kernels::BnEpilogue{}, mean.raw_data(), var.raw_data(), invstd.raw_data(), y.raw_data());
  r.mean = on_host(mean);
  r.var = on_host(var);
  r.invstd = on_host(invstd);
  CHECK(same_bits(on_host(y), r.y));  // the kernel called directly gives what the op gave
}

BnRun run_batch_norm(const BnInputs& in, DType dt, Device device, bool training) {
  auto leaf = [&](const Tensor& t) { return t.to(dt).to(device).detach().requires_grad_(true); };
  Tensor x = leaf(in.x), w = leaf(in.w), b = leaf(in.b);
  Tensor rm = in.running_mean.to(DType::f32).to(device), rv = in.running_var.to(DType::f32).to(device);
  Tensor y = batch_norm2d(x, w, b, rm, rv, training, 0.1, 1e-5);
  y.backward(in.g.to(dt).to(device));
  BnRun r;
  r.y = on_host(y);
  r.running_mean = on_host(rm);
  r.running_var = on_host(rv);
  r.dx = on_host(x.grad());
  r.dw = on_host(w.grad());
  r.db = on_host(b.grad());
  run_forward_kernel(in, dt, device, training, r);
  return r;
}

// Tolerances (relative, floor 1; ops/op_test_util.h's rule, justified for these sizes):
// - y, dx and the saved statistics: op_tolerance. Both sides keep the statistics in double;
//   the CPU adds each plane's values in float lanes first (at most S/16 = 64 additions a lane
//   here, relative error under 4e-6 for the positive squared deviations), so f32 meets 1e-5;
//   bf16 outputs may round one bf16 ulp apart (under 2^-7 relative): 1e-2. The statistics of
//   bf16 inputs are f32 sums of the same bf16 values: 1e-5.
// - the running statistics are f32 tensors updated by elementwise ops on either device: 1e-5.
// - f32 parameter gradients sum up to N*S = 65536 signed terms; the CPU's float-lane plane
//   sums carry float roundings relative to the terms' magnitudes, not to the (cancelling) sum:
//   1e-4. bf16 parameter gradients are rounded to bf16: 1e-2.
void check_parity(const BnRun& got, const BnRun& want, DType dt) {
  const double tol = test::op_tolerance(dt), f32_tol = test::op_tolerance(DType::f32);
  const double stat_tol = dt == DType::f64 ? tol : f32_tol, param_tol = dt == DType::f32 ? 1e-4 : tol;
  const std::vector<std::tuple<const char*, Tensor, Tensor, double>> parts = {
      {"output", got.y, want.y, tol},
      {"running mean", got.running_mean, want.running_mean, f32_tol},
      {"running var", got.running_var, want.running_var, f32_tol},
      {"saved mean", got.mean, want.mean, stat_tol},
      {"saved var", got.var, want.var, stat_tol},
      {"saved invstd", got.invstd, want.invstd, stat_tol},
      {"grad x", got.dx, want.dx, tol},
      {"grad weight", got.dw, want.dw, param_tol},
      {"grad bias", got.db, want.db, param_tol}};
  for (const auto& [what, a, b, t] : parts) {
    INFO(what);
    CHECK(max_rel_error(a.to(DType::f64), b.to(DType::f64)) <= t);
  }
}

// [N, C, H, W]: many tiles per channel (64x64x32x32, resnet8x4's widest), H*W odd (7x7, 15x9)
// or not a multiple of 4 (1x4099), a single tile (2x8x6x6), BatchNorm1d's [N, C] (S = 1).
const std::vector<Shape> kParityShapes = {{64, 64, 32, 32}, {64, 256, 8, 8}, {3, 5, 7, 7}, {16, 4, 15, 9},
                                          {2, 8, 6, 6},     {1, 3, 1, 4099}, {4096, 6}};

void check_shapes(const std::vector<Shape>& shapes, const std::vector<DType>& dtypes, bool training) {
  uint64_t seed = 50;
  for (const Shape& shape : shapes)
    for (DType dt : dtypes) {
      INFO(shape_str(shape) << " " << dtype_name(dt) << (training ? " training" : " eval"));
      const BnInputs in = bn_inputs(shape, seed += 10);
      check_parity(run_batch_norm(in, dt, Device::cuda(), training), run_batch_norm(in, dt, Device::cpu(), training),
                   dt);
    }
}

// Selects the CUDA batch-norm kernels for a scope, restoring the previous choice.
class UseBatchNormKernels {
 public:
  explicit UseBatchNormKernels(cuda::BatchNormKernels k) {
    RETORT_CUDA_CALL(before_ = cuda::batch_norm_kernels());
    RETORT_CUDA_CALL(cuda::set_batch_norm_kernels(k));
  }
  ~UseBatchNormKernels() { RETORT_CUDA_CALL(cuda::set_batch_norm_kernels(before_)); }
  UseBatchNormKernels(const UseBatchNormKernels&) = delete;
  UseBatchNormKernels& operator=(const UseBatchNormKernels&) = delete;

 private:
  cuda::BatchNormKernels before_ = cuda::BatchNormKernels::full_chip;
};

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("cuda batch_norm full-chip: training forward, saved and running statistics, backward vs the CPU") {
  if (test::skip_without_gpu("CUDA test, full-chip batch norm, training parity")) return;
  UseBatchNormKernels chip(cuda::BatchNormKernels::full_chip);
  check_shapes(kParityShapes, {DType::f32, DType::bf16}, true);
  check_shapes({{3, 5, 7, 7}, {16, 4, 15, 9}, {8, 16, 8, 8}}, {DType::f64}, true);
}

TEST_CASE("cuda batch_norm full-chip: eval forward (running statistics) and its backward vs the CPU") {
  if (test::skip_without_gpu("CUDA test, full-chip batch norm, eval parity")) return;
  UseBatchNormKernels chip(cuda::BatchNormKernels::full_chip);
  check_shapes(kParityShapes, {DType::f32, DType::bf16}, false);
  check_shapes({{3, 5, 7, 7}, {8, 16, 8, 8}}, {DType::f64}, false);
}

TEST_CASE("cuda batch_norm full-chip: an input not 16-byte aligned takes the one-element path") {
  if (test::skip_without_gpu("CUDA test, full-chip batch norm, unaligned input")) return;
  UseBatchNormKernels chip(cuda::BatchNormKernels::full_chip);
  const Shape shape{8, 4, 8, 8};
  const BnInputs in = bn_inputs(shape, 90);
  for (DType dt : {DType::f32, DType::bf16})
    for (bool training : {true, false}) {
      INFO(dtype_name(dt) << (training ? " training" : " eval"));
      auto run = [&](Device device) {
        // The same values one element into a buffer: contiguous, but 4 (bf16: 2) bytes off.
        Tensor buffer = Tensor::zeros({shape_numel(shape) + 1}, dt, device);
        Tensor x = buffer.slice(0, 1, shape_numel(shape) + 1).view(shape);
        x.copy_(in.x.to(dt).to(device));
        x.requires_grad_(true);
        Tensor y = batch_norm2d(x, in.w.to(dt).to(device), in.b.to(dt).to(device), Tensor(), Tensor(), training);
        y.backward(in.g.to(dt).to(device));
        return std::pair<Tensor, Tensor>{on_host(y), on_host(x.grad())};
      };
      const auto [y, dx] = run(Device::cuda());
      const auto [y_ref, dx_ref] = run(Device::cpu());
      CHECK(max_rel_error(y.to(DType::f64), y_ref.to(DType::f64)) <= test::op_tolerance(dt));
      CHECK(max_rel_error(dx.to(DType::f64), dx_ref.to(DType::f64)) <= test::op_tolerance(dt));
    }
}

TEST_CASE("cuda batch_norm one block per channel (RETORT_CUDA_BN=block): forward and backward vs the CPU") {
  if (test::skip_without_gpu("CUDA test, one-block-per-channel batch norm parity")) return;
  UseBatchNormKernels block(cuda::BatchNormKernels::block_per_channel);
  const std::vector<Shape> shapes = {{64, 64, 32, 32}, {3, 5, 7, 7}, {4096, 6}};
  check_shapes(shapes, {DType::f32, DType::bf16}, true);
  check_shapes(shapes, {DType::f32, DType::bf16}, false);
}

TEST_CASE("cuda batch_norm full-chip: the same input twice gives the same bits") {
  if (test::skip_without_gpu("CUDA test, full-chip batch norm determinism")) return;
  UseBatchNormKernels chip(cuda::BatchNormKernels::full_chip);
  for (const Shape& shape : std::vector<Shape>{{64, 64, 32, 32}, {64, 256, 8, 8}, {16, 4, 15, 9}})
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(shape_str(shape) << " " << dtype_name(dt));
      const BnInputs in = bn_inputs(shape, 70);
      const BnRun a = run_batch_norm(in, dt, Device::cuda(), true), b = run_batch_norm(in, dt, Device::cuda(), true);
      for (const auto& [what, u, v] : std::vector<std::tuple<const char*, Tensor, Tensor>>{
               {"output", a.y, b.y}, {"running mean", a.running_mean, b.running_mean},
               {"running var", a.running_var, b.running_var}, {"saved mean", a.mean, b.mean},
               {"saved var", a.var, b.var}, {"grad x", a.dx, b.dx}, {"grad weight", a.dw, b.dw},
               {"grad bias", a.db, b.db}}) {
        INFO(what);
        CHECK(same_bits(u, v));
      }
    }
}
}  // TEST_SUITE("gpu")
