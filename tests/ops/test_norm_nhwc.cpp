// Batch norm on channels-last memory and on bf16 activations with f32 parameters
// (kernels/norm.h). Here, on the CPU: the channels-last reference kernel against the NCHW kernel
// on the same values; the row tiling of the CUDA channels-last kernels (kernels/bn_tiling.h's
// RowPlan, kernels/cuda/bn_nhwc.cu) replayed: every value once, statistics from the replayed
// partials; a bf16 input with f32 parameters: bf16 out, each value the f32 normalisation rounded
// once. On a GPU (TEST_SUITE "gpu", skipped without one): the CUDA channels-last kernels through
// batch_norm2d against the CPU in every dtype, training and eval, with channel counts on and off
// the 32-channel chunks and the 4-element units; the output and input gradient stay
// channels-last; the same input twice gives the same bits.
#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>
#include "engine/memory_format.h"
#include "helpers.h"
#include "kernels/bn_tiling.h"
#include "kernels/norm.h"
#include "ops/op_test_util.h"

using namespace retort;
namespace bn = retort::kernels::bn;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {

DType stat_dtype(DType dt) { return dt == DType::f64 ? DType::f64 : DType::f32; }

// One batch-norm kernel call (forward, then backward of g) on the CPU in one memory format;
// the outputs as logical [N, C, H, W] tensors.
struct KernelRun {
  Tensor y, mean, var, invstd, dx, dw, db;
};

KernelRun run_cpu_kernels(const Tensor& x64, const Tensor& g64, DType dt, MemoryFormat format, bool training) {
  const int64_t N = x64.size(0), C = x64.size(1), S = x64.numel() / (N * C);
  const DType sd = stat_dtype(dt);
  const bool nhwc = format == MemoryFormat::channels_last;
  const Tensor x = to_memory_format(x64.to(dt), format), g = to_memory_format(g64.to(dt), format);
  const Tensor w = random_tensor({C}, 31, 0.5, 1.5).to(sd), b = random_tensor({C}, 32, -1, 1).to(sd);
  KernelRun r{empty_in_format(x.shape(), format, dt, Device::cpu()),
              random_tensor({C}, 33, -1, 1).to(sd),
              random_tensor({C}, 34, 0.5, 2).to(sd),
              Tensor::empty({C}, sd),
              empty_in_format(x.shape(), format, dt, Device::cpu()),
              Tensor::empty({C}, sd),
              Tensor::empty({C}, sd)};
  cpu::batch_norm_forward(dt, x.raw_data(), w.raw_data(), b.raw_data(), N, C, S, nhwc, training, 1e-5, {},
                          r.mean.raw_data(), r.var.raw_data(), r.invstd.raw_data(), r.y.raw_data());
  cpu::batch_norm_backward(dt, g.raw_data(), x.raw_data(), w.raw_data(), r.mean.raw_data(), r.invstd.raw_data(), N, C,
                           S, nhwc, training, nullptr, r.dx.raw_data(), r.dw.raw_data(), r.db.raw_data(), nullptr);
  return r;
}

// Shapes: C on and off multiples of 4 and of 32, odd planes, one pixel per image (S = 1).
const std::vector<Shape> kShapes = {{8, 40, 7, 7}, {4, 6, 5, 5}, {16, 3, 9, 9}, {2, 64, 8, 8}, {64, 12, 1, 1}};

}  // namespace

TEST_CASE("batch_norm kernels: the channels-last reference gives the NCHW kernel's values") {
  for (const Shape& shape : kShapes)
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (bool training : {true, false}) {
        INFO(shape_str(shape) << " " << dtype_name(dt) << (training ? " training" : " eval"));
        const Tensor x = random_tensor(shape, 21, -1, 5), g = random_tensor(shape, 22, -1, 1);
        const KernelRun a = run_cpu_kernels(x, g, dt, MemoryFormat::channels_last, training);
        const KernelRun e = run_cpu_kernels(x, g, dt, MemoryFormat::contiguous, training);
        // Relative, floor 1 (ops/op_test_util.h): the two sum in different orders (double rows
        // here, float lanes per plane there): within op_tolerance, and the parameter gradients,
        // sums of N*S signed terms each rounded to float, within 1e-4 in f32.
        const double tol = test::op_tolerance(dt), stat_tol = test::op_tolerance(stat_dtype(dt));
        const double param_tol = dt == DType::f64 ? tol : 1e-4;
        for (const auto& [what, u, v, t] : std::vector<std::tuple<const char*, Tensor, Tensor, double>>{
                 {"output", a.y, e.y, tol},         {"mean", a.mean, e.mean, stat_tol},
                 {"var", a.var, e.var, stat_tol},   {"invstd", a.invstd, e.invstd, stat_tol},
                 {"grad x", a.dx, e.dx, tol},       {"grad weight", a.dw, e.dw, param_tol},
                 {"grad bias", a.db, e.db, param_tol}}) {
          INFO(what);
          CHECK(max_rel_error(u.to(DType::f64), v.to(DType::f64)) <= t);
        }
      }
}

TEST_CASE("batch_norm kernels: a bf16 input with f32 parameters is normalised in f32 and rounded once") {
  for (MemoryFormat format : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
    INFO(memory_format_name(format));
    const Shape shape{6, 5, 7, 7};
    const Tensor x64 = random_tensor(shape, 41, -1, 5), g64 = random_tensor(shape, 42, -1, 1);
    const KernelRun h = run_cpu_kernels(x64, g64, DType::bf16, format, true);
    CHECK(h.y.dtype() == DType::bf16);
    CHECK(h.dx.dtype() == DType::bf16);
    CHECK(h.mean.dtype() == DType::f32);
    CHECK(h.dw.dtype() == DType::f32);
    // The same values in f32: the statistics agree to f32 summation order.
    const Tensor x_rounded = x64.to(DType::bf16).to(DType::f64), g_rounded = g64.to(DType::bf16).to(DType::f64);
    const KernelRun f = run_cpu_kernels(x_rounded, g_rounded, DType::f32, format, true);
    CHECK(max_rel_error(h.mean.to(DType::f64), f.mean.to(DType::f64)) <= 1e-6);
    CHECK(max_rel_error(h.invstd.to(DType::f64), f.invstd.to(DType::f64)) <= 1e-6);
    // The f32 kernel normalising those values with the bf16 run's statistics (eval mode): its
    // output, rounded to bf16, is the bf16 run's output bit for bit.
    const Tensor x = to_memory_format(x_rounded.to(DType::f32), format);
    const Tensor w = random_tensor({5}, 31, 0.5, 1.5).to(DType::f32), b = random_tensor({5}, 32, -1, 1).to(DType::f32);
    Tensor mean = h.mean.clone(), var = h.var.clone(), invstd = Tensor::empty({5});
    Tensor y = empty_in_format(shape, format, DType::f32, Device::cpu());
    cpu::batch_norm_forward(DType::f32, x.raw_data(), w.raw_data(), b.raw_data(), 6, 5, 49,
                            format == MemoryFormat::channels_last, false, 1e-5, {}, mean.raw_data(), var.raw_data(),
                            invstd.raw_data(), y.raw_data());
    CHECK(same_bits(invstd, h.invstd));
    CHECK(same_bits(y.to(DType::bf16).contiguous(), h.y.contiguous()));
  }
}

TEST_CASE("batch_norm channels-last split: every value once, in non-empty tiles that fill the chip") {
  for (const auto& [M, C] : std::vector<std::pair<int64_t, int64_t>>{
           {65536, 32}, {4096, 256}, {49, 40}, {5, 3}, {1000, 64}, {300, 33}, {1, 7}})
    for (int64_t target : {int64_t(1), int64_t(5), int64_t(792), int64_t(1) << 20}) {
      const bn::RowPlan p = bn::make_row_plan(M, C, target);
      INFO("M " << M << " C " << C << " target " << target);
      REQUIRE(p.tiles >= 1);
      CHECK(p.chunks == (C + bn::kRowChannels - 1) / bn::kRowChannels);
      CHECK(p.tiles <= bn::kMaxTiles);
      CHECK(p.tile_begin(p.tiles - 1) < M);  // the last tile is not empty
      CHECK(p.tile_end(p.tiles - 1) == M);
      if (p.tiles > 1) CHECK(p.rows_per_tile >= bn::kMinTileRows);
      if (p.tiles > 1) CHECK(p.chunks * p.tiles <= target);
      std::vector<int> visits(size_t(M * C), 0);
      for (int64_t chunk = 0; chunk < p.chunks; ++chunk)
        for (int64_t t = 0; t < p.tiles; ++t)
          for (int tid = 0; tid < bn::kThreads; ++tid) {
            const int64_t c = chunk * bn::kRowChannels + tid % bn::kRowChannels;
            if (c >= C) continue;
            for (int64_t r = p.tile_begin(t) + tid / bn::kRowChannels; r < p.tile_end(t); r += bn::kRowLanes)
              ++visits[size_t(r * C + c)];
          }
      int64_t wrong = 0;
      for (int v : visits) wrong += v != 1;
      CHECK(wrong == 0);
    }
  // resnet8x4 at batch 64 on a 132-SM H100 (6 blocks of 256 per SM): its layers fill the chip
  // (the first with 790 tiles of 83 rows: 792 would need tiles of 82.7 rows), but for the last,
  // whose 4,096 rows make only 64 tiles of kMinTileRows rows per 32-channel chunk (512 blocks).
  for (const auto& [HW, C] : std::vector<std::pair<int64_t, int64_t>>{{1024, 32}, {1024, 64}, {256, 128}, {64, 256}}) {
    const bn::RowPlan p = bn::make_row_plan(64 * HW, C, 132 * 6);
    INFO("C " << C);
    CHECK(p.chunks * p.tiles <= 132 * 6);
    CHECK(p.chunks * p.tiles >= std::min<int64_t>(132 * 6 - 8, p.chunks * (64 * HW / bn::kMinTileRows)));
  }
  CHECK(bn::make_row_plan(64 * 64, 256, 132 * 6).tiles == 64);
}

TEST_CASE("batch_norm channels-last split: four-channel units know their channel without a division") {
  for (const auto& [M, C] : std::vector<std::pair<int64_t, int64_t>>{{49, 40}, {5, 4}, {1000, 64}, {17, 12}})
    for (int64_t max_blocks : {int64_t(1), int64_t(3), int64_t(1056)}) {
      const bn::ElementPlan p = bn::make_element_plan(M, C, 1, 4, max_blocks);
      INFO("M " << M << " C " << C << " max_blocks " << max_blocks);
      std::vector<int> visits(size_t(p.total_units), 0);
      int64_t wrong_channel = 0;
      for (int64_t thread = 0; thread < p.stride; ++thread)
        for (bn::ChannelWalk at(p, thread); at.u < p.total_units; at.advance(p)) {
          wrong_channel += at.c != (at.u * 4) % C;
          ++visits[size_t(at.u)];
        }
      CHECK(wrong_channel == 0);
      int64_t wrong = 0;
      for (int v : visits) wrong += v != 1;
      CHECK(wrong == 0);
    }
}

TEST_CASE("batch_norm channels-last split: statistics from the replayed partials match the reference") {
  const int64_t M = 3 * 49, C = 40;
  const Tensor x = random_tensor({3, C, 7, 7}, 51, -1, 5), g = random_tensor({3, C, 7, 7}, 52, -1, 1);
  const KernelRun ref = run_cpu_kernels(x, g, DType::f64, MemoryFormat::channels_last, true);
  const std::vector<double> xv = to_memory_format(x, MemoryFormat::channels_last).permute({0, 2, 3, 1}).to_vector();
  const bn::RowPlan p = bn::make_row_plan(M, C, 13);
  REQUIRE(p.tiles > 1);
  for (int64_t c = 0; c < C; ++c) {
    const double K = xv[size_t(c)];
    double s1 = 0, s2 = 0;
    for (int64_t t = 0; t < p.tiles; ++t) {  // each tile's partial, merged in tile order
      double a = 0, b = 0;
      for (int64_t r = p.tile_begin(t); r < p.tile_end(t); ++r) {
        const double d = xv[size_t(r * C + c)] - K;
        a += d;
        b += d * d;
      }
      s1 += a;
      s2 += b;
    }
    double m, v;
    bn::shifted_moments(K, s1, s2, M, m, v);
    INFO("channel " << c);
    CHECK(std::abs(m - ref.mean.to_vector()[size_t(c)]) <= 1e-12 * (1 + std::abs(m)));
    CHECK(std::abs(v - ref.var.to_vector()[size_t(c)]) <= 1e-12 * (1 + v));
  }
}

namespace {

struct OpRun {
  Tensor y, running_mean, running_var, dx, dw, db;
};

Tensor on_host(const Tensor& t) { return t.detach().to(Device::cpu()); }

// batch_norm2d on a channels-last x with parameters in the statistics dtype (as autocast runs a
// bf16 activation), forward then backward.
OpRun run_channels_last(const Shape& shape, DType dt, Device device, bool training, uint64_t seed) {
  const int64_t C = shape[1];
  const DType sd = stat_dtype(dt);
  auto leaf = [&](const Tensor& t, DType d) { return t.to(d).to(device).detach().requires_grad_(true); };
  Tensor x = leaf(to_memory_format(random_tensor(shape, seed, -1, 5), MemoryFormat::channels_last), dt);
  Tensor w = leaf(random_tensor({C}, seed + 1, 0.5, 1.5), sd), b = leaf(random_tensor({C}, seed + 2, -1, 1), sd);
  Tensor rm = random_tensor({C}, seed + 3, -1, 1).to(DType::f32).to(device);
  Tensor rv = random_tensor({C}, seed + 4, 0.5, 2).to(DType::f32).to(device);
  Tensor y = batch_norm2d(x, w, b, rm, rv, training, 0.1, 1e-5);
  CHECK(is_channels_last(y));
  y.backward(to_memory_format(random_tensor(shape, seed + 5, -1, 1).to(dt).to(device), MemoryFormat::channels_last));
  CHECK(is_channels_last(x.grad()));
  return {on_host(y), on_host(rm), on_host(rv), on_host(x.grad()), on_host(w.grad()), on_host(b.grad())};
}

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("cuda batch_norm channels-last: forward, running statistics and backward vs the CPU") {
  if (test::skip_without_gpu("CUDA test, channels-last batch norm parity")) return;
  const std::vector<Shape> shapes = {{64, 64, 32, 32}, {64, 256, 8, 8}, {8, 40, 7, 7}, {4, 6, 5, 5}, {16, 3, 9, 9}};
  uint64_t seed = 60;
  for (const Shape& shape : shapes)
    for (DType dt : {DType::f32, DType::bf16, DType::f64})
      for (bool training : {true, false}) {
        if (dt == DType::f64 && shape[0] == 64) continue;  // f64 on the small shapes only
        INFO(shape_str(shape) << " " << dtype_name(dt) << (training ? " training" : " eval"));
        const OpRun got = run_channels_last(shape, dt, Device::cuda(), training, seed += 10);
        const OpRun want = run_channels_last(shape, dt, Device::cpu(), training, seed);
        // The tolerances of tests/ops/test_norm_gpu.cpp's parity test, for the same reasons.
        const double tol = test::op_tolerance(dt), f32_tol = test::op_tolerance(DType::f32);
        const double param_tol = dt == DType::f64 ? tol : 1e-4;
        for (const auto& [what, u, v, t] : std::vector<std::tuple<const char*, Tensor, Tensor, double>>{
                 {"output", got.y, want.y, tol},
                 {"running mean", got.running_mean, want.running_mean, f32_tol},
                 {"running var", got.running_var, want.running_var, f32_tol},
                 {"grad x", got.dx, want.dx, tol},
                 {"grad weight", got.dw, want.dw, param_tol},
                 {"grad bias", got.db, want.db, param_tol}}) {
          INFO(what);
          CHECK(max_rel_error(u.to(DType::f64), v.to(DType::f64)) <= t);
        }
      }
}

TEST_CASE("cuda batch_norm channels-last: the same input twice gives the same bits") {
  if (test::skip_without_gpu("CUDA test, channels-last batch norm determinism")) return;
  for (const Shape& shape : std::vector<Shape>{{64, 64, 32, 32}, {8, 40, 7, 7}})
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(shape_str(shape) << " " << dtype_name(dt));
      const OpRun a = run_channels_last(shape, dt, Device::cuda(), true, 80);
      const OpRun b = run_channels_last(shape, dt, Device::cuda(), true, 80);
      CHECK(same_bits(a.y, b.y));
      CHECK(same_bits(a.dx, b.dx));
      CHECK(same_bits(a.dw, b.dw));
      CHECK(same_bits(a.running_var, b.running_var));
    }
}
}  // TEST_SUITE("gpu")
