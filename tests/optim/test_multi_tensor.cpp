// Multi-tensor optimizer steps and on-device gradient clipping: SGD (plain, momentum, nesterov,
// weight decay) and AdamW step() bitwise equal to the single-tensor kernel per parameter, over
// odd sizes and several steps; mixed groups (two lrs, an adamw group under SGD) and how they are
// bucketed; the device-side skip flag (nonzero or NaN: nothing moves; zero: as without a flag);
// clip_grad_norm_on_device against the host algorithm it replaced, with non-finite, broadcast
// and shared gradients, and no host read; and, on a GPU, the CUDA kernels (split over several
// launches) against the CPU reference.
#include <cmath>
#include <functional>
#include <limits>
#include "engine/optim/adamw.h"
#include "engine/optim/clip.h"
#include "engine/optim/sgd.h"
#include "engine/optim/update_batch.h"
#include "helpers.h"

using namespace retort;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {
const std::vector<Shape> kOddShapes = {{1}, {7}, {1000}, {4099}, {3, 17, 19}};

std::vector<Tensor> random_params(const std::vector<Shape>& shapes, DType dtype, uint64_t seed,
                                  Device device = Device::cpu()) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < shapes.size(); ++i)
    out.push_back(random_tensor(shapes[i], seed + i, -1, 1, dtype, device).requires_grad_(true));
  return out;
}

ParamGroup group_of(std::vector<Tensor> params, double lr, double wd, GroupRule rule = GroupRule::optimizer) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = wd;
  g.rule = rule;
  return g;
}

// The reference update of parameter `index` (flat over the groups) by the single-tensor kernel.
using ReferenceUpdate = std::function<void(size_t index, Tensor& param, const Tensor& grad, Optimizer::ParamState&)>;

// Steps `opt` and, on copies, the reference, with the same random gradients; then every
// parameter, state tensor and state scalar must be bitwise equal.
void check_bitwise_against_reference(Optimizer& opt, const ReferenceUpdate& reference, int steps = 3) {
  std::vector<Tensor> params, copies;
  for (const auto& g : opt.groups())
    for (const auto& p : g.params) params.push_back(p), copies.push_back(p.detach().clone());
  std::vector<Optimizer::ParamState> states(params.size());
  for (int step = 0; step < steps; ++step) {
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor grad = random_tensor(params[i].shape(), 1000 + 37 * uint64_t(step) + i, -1, 1, params[i].dtype());
      params[i].set_grad(grad);
      reference(i, copies[i], grad, states[i]);
    }
    opt.step();
  }
  const OptimizerState exported = opt.export_state();
  size_t flat = 0, tensors_seen = 0;
  for (size_t g = 0; g < opt.groups().size(); ++g)
    for (size_t p = 0; p < opt.groups()[g].params.size(); ++p, ++flat) {
      INFO("group " << g << " param " << p << " " << params[flat].str());
      CHECK(same_bits(params[flat].detach(), copies[flat]));
      for (const auto& [key, want] : states[flat].tensors) {
        const std::string name = "group" + std::to_string(g) + ".param" + std::to_string(p) + "." + key;
        for (const auto& [n, t] : exported.tensors) {
          if (n != name) continue;
          CHECK(same_bits(t, want));
          ++tensors_seen;
        }
      }
      for (const auto& [key, want] : states[flat].scalars)
        CHECK(exported.scalars.at("group" + std::to_string(g) + ".param" + std::to_string(p) + "." + key) == want);
    }
  CHECK(tensors_seen == exported.tensors.size());
}
}  // namespace

TEST_CASE("multi-tensor: SGD step() is bitwise the single-tensor kernel per parameter") {
  struct Config {
    SgdOptions options;
    double wd;
  };
  for (DType dt : {DType::f32, DType::f64})
    for (const Config& c : {Config{{0.0, false}, 0.0}, Config{{0.9, false}, 0.0}, Config{{0.9, true}, 0.0},
                            Config{{0.0, false}, 0.01}, Config{{0.9, true}, 5e-4}}) {
      INFO(dtype_name(dt) << " momentum " << c.options.momentum << " nesterov " << c.options.nesterov << " wd "
                          << c.wd);
      const ParamGroup group = group_of(random_params(kOddShapes, dt, 1), 0.05, c.wd);
      SGD opt({group}, c.options);
      check_bitwise_against_reference(opt, [&](size_t, Tensor& p, const Tensor& g, Optimizer::ParamState& s) {
        sgd_update_param(group, c.options, p, g, s);
      });
    }
}

TEST_CASE("multi-tensor: AdamW step() is bitwise the single-tensor kernel per parameter") {
  for (DType dt : {DType::f32, DType::f64})
    for (const AdamWOptions& o : {AdamWOptions{}, AdamWOptions{0.8, 0.99, 1e-6}}) {
      INFO(dtype_name(dt) << " betas " << o.beta1 << ", " << o.beta2);
      const ParamGroup group = group_of(random_params(kOddShapes, dt, 2), 0.01, 0.05);
      AdamW opt({group}, o);
      check_bitwise_against_reference(opt, [&](size_t, Tensor& p, const Tensor& g, Optimizer::ParamState& s) {
        adamw_update_param(group, o, p, g, s);
      });
    }
}

TEST_CASE("multi-tensor: mixed groups (two lrs, an adamw group under SGD) match the reference") {
  const SgdOptions options{0.9, true};
  const std::vector<ParamGroup> groups = {
      group_of(random_params({{7}, {1000}}, DType::f32, 3), 0.1, 5e-4),
      group_of(random_params({{4099}, {1}}, DType::f32, 5), 0.02, 0.0),
      group_of(random_params({{33, 5}}, DType::f32, 7), 0.01, 0.0, GroupRule::adamw)};
  SGD opt(groups, options);
  const std::vector<size_t> group_of_index = {0, 0, 1, 1, 2};
  check_bitwise_against_reference(opt, [&](size_t i, Tensor& p, const Tensor& g, Optimizer::ParamState& s) {
    const ParamGroup& group = groups[group_of_index[i]];
    if (group.rule == GroupRule::adamw) adamw_update_param(group, AdamWOptions{}, p, g, s);
    else sgd_update_param(group, options, p, g, s);
  });
}

TEST_CASE("multi-tensor: UpdateBatch buckets by device, dtype, rule and hyper-parameters") {
  auto dense = [](DType dt) { return Tensor::ones({3}, dt); };
  SgdHyper a, b;
  a.lr = 0.1;
  b.lr = 0.2;
  AdamWHyper h1, h2;
  h2.step = 2;
  UpdateBatch batch;
  batch.add_sgd(a, dense(DType::f32), dense(DType::f32), Tensor());
  batch.add_sgd(a, dense(DType::f32), dense(DType::f32), Tensor());  // same bucket
  CHECK(batch.num_buckets() == 1);
  batch.add_sgd(b, dense(DType::f32), dense(DType::f32), Tensor());  // another lr
  batch.add_sgd(a, dense(DType::f64), dense(DType::f64), Tensor());  // another dtype
  CHECK(batch.num_buckets() == 3);
  batch.add_adamw(h1, dense(DType::f32), dense(DType::f32), dense(DType::f32), dense(DType::f32));
  batch.add_adamw(h2, dense(DType::f32), dense(DType::f32), dense(DType::f32), dense(DType::f32));  // another step
  CHECK(batch.num_buckets() == 5);
  SgdHyper with_momentum = a;
  with_momentum.momentum = 0.9;
  CHECK_THROWS_WITH_AS(batch.add_sgd(with_momentum, dense(DType::f32), dense(DType::f32), Tensor()),
                       doctest::Contains("momentum buffer"), Error);
  CHECK_THROWS_WITH_AS(batch.add_sgd(a, dense(DType::f32), Tensor::ones({4}), Tensor()),
                       doctest::Contains("the gradient is"), Error);
}

TEST_CASE("multi-tensor: a nonzero skip flag leaves parameters and state untouched; zero is no flag") {
  auto make_group = [] { return group_of(random_params(kOddShapes, DType::f32, 11), 0.05, 0.01); };
  auto grads_for = [](const ParamGroup& g, uint64_t seed) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor p = g.params[i];
      p.set_grad(random_tensor(p.shape(), seed + i, -1, 1, DType::f32));
    }
  };
  SGD sgd({make_group()}, SgdOptions{0.9, false});
  AdamW adam({make_group()});
  for (Optimizer* opt : {static_cast<Optimizer*>(&sgd), static_cast<Optimizer*>(&adam)}) {
    INFO(opt->name());
    const ParamGroup& g = opt->groups()[0];
    grads_for(g, 20);
    opt->step(Tensor::full({1}, 0.0));  // a finite step creates the state
    std::vector<Tensor> before;
    for (const auto& p : g.params) before.push_back(p.detach().clone());
    const OptimizerState state_before = opt->export_state();
    for (double flag : {1.0, -3.0, std::numeric_limits<double>::quiet_NaN()}) {
      grads_for(g, 30);
      opt->step(Tensor::full({1}, flag));
    }
    for (size_t i = 0; i < g.params.size(); ++i) CHECK(same_bits(g.params[i].detach(), before[i]));
    const OptimizerState state_after = opt->export_state();
    REQUIRE(state_after.tensors.size() == state_before.tensors.size());
    for (size_t i = 0; i < state_after.tensors.size(); ++i)
      CHECK(same_bits(state_after.tensors[i].second, state_before.tensors[i].second));
    if (opt == &adam) CHECK(state_after.scalars.at("group0.param0.step") == 4.0);  // host counters still advance
  }
  // Skipped as the very first step: the momentum buffers exist (zeros, which is what a fresh
  // buffer means) and nothing moves.
  SGD fresh({make_group()}, SgdOptions{0.9, false});
  const Tensor first = fresh.groups()[0].params[3].detach().clone();
  grads_for(fresh.groups()[0], 60);
  fresh.step(Tensor::ones({1}));
  CHECK(same_bits(fresh.groups()[0].params[3].detach(), first));
  const OptimizerState fresh_state = fresh.export_state();
  CHECK(fresh_state.tensors.size() == kOddShapes.size());
  for (const auto& [name, t] : fresh_state.tensors) CHECK(sum(abs(t)).item() == 0.0);
  // A zero flag (shape [] or [1]) is the same as no flag.
  SGD flagged({make_group()}, SgdOptions{0.9, false}), plain({make_group()}, SgdOptions{0.9, false});
  for (int step = 0; step < 2; ++step) {
    grads_for(flagged.groups()[0], 50 + step);
    grads_for(plain.groups()[0], 50 + step);
    flagged.step(step == 0 ? Tensor::scalar(0.0) : Tensor::zeros({1}));
    plain.step();
  }
  for (size_t i = 0; i < kOddShapes.size(); ++i)
    CHECK(same_bits(flagged.groups()[0].params[i].detach(), plain.groups()[0].params[i].detach()));
  CHECK_THROWS_WITH_AS(sgd.step(Tensor::zeros({2})), doctest::Contains("one f32 element"), Error);
  CHECK_THROWS_WITH_AS(sgd.step(Tensor::zeros({1}, DType::f64)), doctest::Contains("one f32 element"), Error);
}

TEST_CASE("multi-tensor: a parameter listed twice is refused") {
  Tensor p = Tensor::ones({3}).requires_grad_(true);
  CHECK_THROWS_WITH_AS(SGD({group_of({p}, 0.1, 0.0), group_of({p}, 0.2, 0.0)}), doctest::Contains("only once"), Error);
}

namespace {
// The norm on the host: every element squared and added in long double (the device adds in
// double, in runs: tests/optim/test_sum_squares.cpp), then sqrt.
double host_norm(const std::vector<Tensor>& grads) {
  long double total_sq = 0;
  for (const auto& g : grads)
    for (const double v : g.to_vector()) total_sq += (long double)v * v;
  return double(std::sqrt(total_sq));
}

// The host algorithm clip_grad_norm used before the device version, given the norm: the scale
// applied through mul(g, double) when the norm is finite and above max_norm; scales `grads`
// (dense copies) in place.
void host_clip(std::vector<Tensor>& grads, double norm, double max_norm) {
  if (!std::isfinite(norm) || norm <= max_norm) return;
  for (auto& g : grads) g = mul(g, max_norm / (norm + 1e-6));
}

std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) out.push_back(p.grad().contiguous().clone());
  return out;
}

void set_random_grads(const std::vector<Tensor>& params, uint64_t seed, double scale) {
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i];
    p.set_grad(mul(random_tensor(p.shape(), seed + i, -1, 1, p.dtype(), p.device()), scale));
  }
}
}  // namespace

// The norm is the host's to the last bits of a double sum; given that norm, the gradients are
// bitwise the host's: both multiply each element by the same f64 factor rounded to the
// gradient's dtype.
TEST_CASE("multi-tensor: clip_grad_norm_on_device equals the host algorithm, with no host read") {
  for (DType dt : {DType::f32, DType::f64})
    for (double max_norm : {1.0, 1e6}) {  // clipped, and left alone
      INFO(dtype_name(dt) << " max_norm " << max_norm);
      const std::vector<Tensor> params = random_params(kOddShapes, dt, 60);
      set_random_grads(params, 70, 2.0);
      std::vector<Tensor> want = grads_of(params);
      const double want_norm = host_norm(want);
      Tensor norm;
      const int64_t reads_before = host_read_count();
      norm = clip_grad_norm_on_device(params, max_norm);
      CHECK(host_read_count() == reads_before);
      CHECK(norm.dtype() == DType::f64);
      CHECK(std::abs(norm.item() - want_norm) <= 1e-14 * want_norm);
      host_clip(want, norm.item(), max_norm);
      for (size_t i = 0; i < params.size(); ++i) CHECK(same_bits(params[i].grad(), want[i]));
    }
}

TEST_CASE("multi-tensor: clip_grad_norm_on_device leaves non-finite gradients alone and flags the norm") {
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    INFO("bad value " << bad);
    const std::vector<Tensor> params = random_params(kOddShapes, DType::f32, 80);
    set_random_grads(params, 90, 5.0);
    Tensor poisoned = params[2];  // one bad element among 1000
    std::vector<double> v = poisoned.grad().to_vector();
    v[17] = bad;
    poisoned.set_grad(Tensor::from_vector(v, poisoned.shape(), DType::f32));
    const std::vector<Tensor> before = grads_of(params);
    const Tensor norm = clip_grad_norm_on_device(params, 1.0);
    CHECK_FALSE(std::isfinite(norm.item()));
    for (size_t i = 0; i < params.size(); ++i) CHECK(same_bits(params[i].grad(), before[i]));
    const Tensor flag = nonfinite_flag(norm);
    CHECK(flag.dtype() == DType::f32);
    CHECK(flag.numel() == 1);
    CHECK(flag.item() == 1.0);
  }
  CHECK(nonfinite_flag(Tensor::scalar(3.0, DType::f64)).item() == 0.0);
  CHECK(nonfinite_flag(Tensor::full({1}, -std::numeric_limits<double>::infinity())).item() == 1.0);
}

TEST_CASE("multi-tensor: clip_grad_norm_on_device with broadcast, shared and missing gradients") {
  // A broadcast (stride-0) gradient is replaced by a dense scaled copy, not written through.
  Tensor source = Tensor::from_vector({2}, {1});
  Tensor c = Tensor::zeros({3});
  c.set_grad(source.expand({3}));  // norm sqrt(12)
  const double s = 1.0 / (std::sqrt(12.0) + 1e-6);
  CHECK(clip_grad_norm_on_device({c}, 1.0).item() == std::sqrt(12.0));
  CHECK(c.grad().is_contiguous());
  test::check_close(c.grad(), {2 * s, 2 * s, 2 * s}, 1e-7);
  CHECK(source.item() == 2.0);
  // One gradient tensor shared by two parameters counts twice in the norm and is scaled once.
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({2});
  const Tensor shared = Tensor::from_vector({3, 4}, {2});
  a.set_grad(shared);
  b.set_grad(shared);
  const double norm = std::sqrt(50.0), scale = 1.0 / (norm + 1e-6);
  CHECK(clip_grad_norm_on_device({a, b}, 1.0).item() == norm);
  test::check_close(a.grad(), {3 * scale, 4 * scale}, 1e-7);
  CHECK(same_bits(a.grad(), b.grad()));
  // No gradient at all: 0; the host form reads the same value.
  Tensor none = Tensor::zeros({3});
  CHECK(clip_grad_norm_on_device({none}, 1.0).item() == 0.0);
  CHECK(clip_grad_norm({none}, 1.0) == 0.0);
  CHECK_THROWS_WITH_AS(clip_grad_norm_on_device({a}, -1.0), doctest::Contains("non-negative"), Error);
}

TEST_CASE("multi-tensor: a step with a flag from the clipped norm makes no host read") {
  const std::vector<Tensor> params = random_params(kOddShapes, DType::f32, 100);
  SGD opt({group_of(params, 0.05, 0.0)}, SgdOptions{0.9, false});
  set_random_grads(params, 110, 1.0);
  const int64_t before = host_read_count();
  opt.step(nonfinite_flag(clip_grad_norm_on_device(params, 1.0)));
  CHECK(host_read_count() == before);
}

namespace {
// Many tensors, so the CUDA lists span several launches (tables of 87 to 136 tensors), with
// odd sizes and a few of more than one chunk (16384 elements).
std::vector<Shape> many_shapes() {
  std::vector<Shape> shapes = {{1}, {7}, {1000}, {4099}, {70001}, {16384 * 3 + 5}};
  for (int64_t i = 0; i < 150; ++i) shapes.push_back({1 + (37 * i) % 301});
  return shapes;
}

// Runs `steps` steps of the same optimizer on CPU and CUDA copies (the CUDA one with a zero
// skip flag on the device) and compares parameters and state.
template <typename Opt, typename Options>
void check_cuda_against_cpu(DType dtype, double wd, Options options) {
  INFO(dtype_name(dtype) << " wd " << wd);
  const std::vector<Shape> shapes = many_shapes();
  const std::vector<Tensor> cpu = random_params(shapes, dtype, 200);
  std::vector<Tensor> gpu;
  for (const auto& p : cpu) gpu.push_back(p.detach().to(Device::cuda()).requires_grad_(true));
  Opt cpu_opt({group_of(cpu, 0.05, wd)}, options), gpu_opt({group_of(gpu, 0.05, wd)}, options);
  const Tensor zero = Tensor::zeros({1}, DType::f32, Device::cuda());
  for (int step = 0; step < 3; ++step) {
    set_random_grads(cpu, 300 + 1000 * uint64_t(step), 1.0);
    for (size_t i = 0; i < cpu.size(); ++i) gpu[i].set_grad(cpu[i].grad().to(Device::cuda()));
    cpu_opt.step();
    gpu_opt.step(zero);
  }
  const double tol = dtype == DType::f32 ? 1e-6 : 1e-12;
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO("parameter " << i << " " << shape_str(shapes[i]));
    CHECK(max_rel_error(gpu[i].detach().to(Device::cpu()), cpu[i].detach()) <= tol);
  }
  const OptimizerState sc = cpu_opt.export_state(), sg = gpu_opt.export_state();
  REQUIRE(sc.tensors.size() == sg.tensors.size());
  for (size_t i = 0; i < sc.tensors.size(); ++i) {
    INFO(sc.tensors[i].first);
    CHECK(max_rel_error(sg.tensors[i].second.to(Device::cpu()), sc.tensors[i].second) <= tol);
  }
  // A nonzero flag on the device: nothing moves, and nothing is read back.
  std::vector<Tensor> before;
  for (const auto& p : gpu) before.push_back(p.detach().to(Device::cpu()));
  const Tensor one = Tensor::ones({1}, DType::f32, Device::cuda());
  const int64_t reads = host_read_count();
  gpu_opt.step(one);
  CHECK(host_read_count() == reads);
  for (size_t i = 0; i < gpu.size(); ++i) CHECK(same_bits(gpu[i].detach().to(Device::cpu()), before[i]));
}
}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("cuda multi-tensor: SGD and AdamW against the CPU reference, skip flag on the device") {
  RETORT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    check_cuda_against_cpu<SGD>(dt, 0.0, SgdOptions{});
    check_cuda_against_cpu<SGD>(dt, 0.01, SgdOptions{0.9, false});
    check_cuda_against_cpu<SGD>(dt, 0.01, SgdOptions{0.9, true});
    check_cuda_against_cpu<AdamW>(dt, 0.0, AdamWOptions{});
    check_cuda_against_cpu<AdamW>(dt, 0.05, AdamWOptions{0.8, 0.99, 1e-6});
  }
}

TEST_CASE("cuda multi-tensor: clip_grad_norm_on_device matches the CPU and reads nothing back") {
  RETORT_REQUIRE_GPU();
  const std::vector<Shape> shapes = many_shapes();
  const std::vector<Tensor> cpu = random_params(shapes, DType::f32, 400);
  std::vector<Tensor> gpu;
  for (const auto& p : cpu) gpu.push_back(p.detach().to(Device::cuda()).requires_grad_(true));
  set_random_grads(cpu, 500, 1.0);
  for (size_t i = 0; i < cpu.size(); ++i) gpu[i].set_grad(cpu[i].grad().to(Device::cuda()));
  const Tensor want = clip_grad_norm_on_device(cpu, 1.0);
  const int64_t reads = host_read_count();
  const Tensor got = clip_grad_norm_on_device(gpu, 1.0);
  const Tensor flag = nonfinite_flag(got);
  CHECK(host_read_count() == reads);
  CHECK(got.device().is_cuda());
  CHECK(flag.device().is_cuda());
  CHECK(std::abs(got.item() - want.item()) <= 1e-6 * want.item());
  CHECK(flag.item() == 0.0);
  for (size_t i = 0; i < cpu.size(); ++i) CHECK(max_rel_error(gpu[i].grad().to(Device::cpu()), cpu[i].grad()) <= 1e-6);
}
}
