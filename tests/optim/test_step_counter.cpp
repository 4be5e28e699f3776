// AdamW's step count on the device (engine/optim/step_counter.h): the optimizer's count
// advances once per step and the AdamW kernels read it, bitwise what the host's count gives
// (also for an AdamW group under SGD, AFT's case); a parameter that missed a gradient keeps its
// own count, stays exact, and marks the step as not replayable; importing a checkpoint restarts
// the count from the imported steps; the kernel with a count pointer ignores h.step. On a GPU
// (suite "gpu"): the CUDA AdamW kernel reading the count from device memory against the CPU.
#include "engine/kernel_call.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "helpers.h"
#include "kernels/optim.h"

using namespace retort;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {

ParamGroup group_of(std::vector<Tensor> params, double lr, GroupRule rule = GroupRule::optimizer) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = 0.01;
  g.rule = rule;
  return g;
}

std::vector<Tensor> params_of(std::vector<Shape> shapes, uint64_t seed) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(random_tensor(s, seed++, -1, 1, DType::f32).requires_grad_(true));
  return out;
}

// One step: gradients for the parameters whose `has_grad` is true (none for the others), the
// optimizer's step, and the same update of the copies by the single-tensor reference kernel
// with each parameter's own host step.
void step_both(Optimizer& opt, std::vector<Tensor>& params, std::vector<Tensor>& copies,
               std::vector<Optimizer::ParamState>& states, const std::vector<bool>& has_grad, uint64_t seed) {
  ParamGroup reference_group = opt.groups()[0];
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].zero_grad();
    if (!has_grad[i]) continue;
    const Tensor grad = random_tensor(params[i].shape(), seed + i, -1, 1, DType::f32);
    params[i].set_grad(grad);
    adamw_update_param(reference_group, AdamWOptions{}, copies[i], grad, states[i]);
  }
  opt.step();
}

bool all_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  bool same = true;
  for (size_t i = 0; i < a.size(); ++i) same = same && same_bits(a[i].detach(), b[i]);
  return same;
}

double count_of(const DeviceStepCounter& counter) { return counter.count().to_vector()[0]; }

// Exposes the protected counter of an AdamW for the checks.
class InspectableAdamW : public AdamW {
 public:
  using AdamW::AdamW;
  const DeviceStepCounter& counter() { return step_counter(); }
};

}  // namespace

TEST_CASE("step counter: AdamW's kernels read the step from the counter, bitwise the host step's update") {
  std::vector<Tensor> params = params_of({{7}, {3, 5}, {1000}}, 11), copies;
  for (const Tensor& p : params) copies.push_back(p.detach().clone());
  std::vector<Optimizer::ParamState> states(params.size());
  InspectableAdamW opt({group_of(params, 1e-2)});
  for (int step = 1; step <= 4; ++step) {
    step_both(opt, params, copies, states, {true, true, true}, 100 * uint64_t(step));
    INFO("step " << step);
    CHECK(opt.steps_on_device());
    CHECK(opt.counter().mirror() == step);
    CHECK(count_of(opt.counter()) == step);
    CHECK(all_equal(params, copies));
  }
}

TEST_CASE("step counter: a parameter that missed a gradient keeps its own step and the step is not replayable") {
  std::vector<Tensor> params = params_of({{5}, {9}}, 21), copies;
  for (const Tensor& p : params) copies.push_back(p.detach().clone());
  std::vector<Optimizer::ParamState> states(params.size());
  InspectableAdamW opt({group_of(params, 1e-2)});
  step_both(opt, params, copies, states, {true, true}, 200);
  step_both(opt, params, copies, states, {true, false}, 300);  // the second parameter misses step 2
  CHECK(opt.steps_on_device());                                // the one that stepped is on the count
  step_both(opt, params, copies, states, {true, true}, 400);   // step 3: the second is at its step 2
  CHECK_FALSE(opt.steps_on_device());
  CHECK(opt.counter().mirror() == 3);
  CHECK(all_equal(params, copies));
}

TEST_CASE("step counter: an imported state restarts the count from the imported steps") {
  std::vector<Tensor> params = params_of({{6}, {4, 4}}, 31);
  AdamW first({group_of(params, 1e-2)});
  std::vector<Tensor> copies;
  for (const Tensor& p : params) copies.push_back(p.detach().clone().requires_grad_(true));
  auto grads = [&](std::vector<Tensor>& ps, uint64_t seed) {
    for (size_t i = 0; i < ps.size(); ++i) ps[i].set_grad(random_tensor(ps[i].shape(), seed + i, -1, 1, DType::f32));
  };
  for (uint64_t s = 0; s < 2; ++s) {
    grads(params, 500 + 10 * s);
    first.step();
  }
  // A second optimizer over copies of the weights, given the first's state: its next step is
  // step 3, bitwise the first's.
  for (size_t i = 0; i < params.size(); ++i) copies[i].detach().copy_(params[i].detach());
  InspectableAdamW second({group_of(copies, 1e-2)});
  second.import_state(first.export_state());
  grads(params, 600);
  grads(copies, 600);
  first.step();
  second.step();
  CHECK(second.steps_on_device());
  CHECK(second.counter().mirror() == 3);
  CHECK(all_equal(copies, params));
}

TEST_CASE("step counter: an AdamW group under SGD (AFT's rho) steps on the count too") {
  std::vector<Tensor> sgd_params = params_of({{8}}, 41), adam_params = params_of({{3}}, 42), copies;
  copies.push_back(adam_params[0].detach().clone());
  std::vector<Optimizer::ParamState> states(1);
  SGD opt({group_of(sgd_params, 0.1), group_of(adam_params, 1e-2, GroupRule::adamw)}, SgdOptions{0.9, false});
  ParamGroup reference = group_of({}, 1e-2, GroupRule::adamw);
  for (uint64_t s = 0; s < 3; ++s) {
    sgd_params[0].set_grad(random_tensor({8}, 700 + s, -1, 1, DType::f32));
    const Tensor g = random_tensor({3}, 800 + s, -1, 1, DType::f32);
    adam_params[0].set_grad(g);
    adamw_update_param(reference, AdamWOptions{}, copies[0], g, states[0]);
    opt.step();
    CHECK(opt.steps_on_device());
  }
  CHECK(same_bits(adam_params[0].detach(), copies[0]));
}

TEST_CASE("adamw_multi_update: a step count pointer overrides h.step") {
  const Tensor grad = random_tensor({37}, 51, -1, 1, DType::f32);
  auto run = [&](int64_t h_step, const double* count) {
    Tensor p = random_tensor({37}, 52, -1, 1, DType::f32), m = Tensor::zeros({37}), v = Tensor::zeros({37});
    AdamWHyper h;
    h.step = h_step;
    const AdamwTensor t{p.raw_data(), grad.raw_data(), m.raw_data(), v.raw_data(), 37};
    cpu::adamw_multi_update(DType::f32, &t, 1, h, nullptr, count, nullptr);
    return p;
  };
  const double five = 5;
  CHECK(same_bits(run(1, &five), run(5, nullptr)));
  CHECK_FALSE(same_bits(run(1, &five), run(1, nullptr)));  // the step changes the update
}

TEST_SUITE("gpu") {
TEST_CASE("cuda adamw_multi_update: the step count read from device memory, against the CPU") {
  if (test::skip_without_gpu("CUDA test, AdamW with the step count on the device")) return;
  const Tensor grad = random_tensor({40000}, 61, -1, 1, DType::f32);
  auto run = [&](Device device) {
    Tensor p = random_tensor({40000}, 62, -1, 1, DType::f32).to(device);
    Tensor m = Tensor::zeros({40000}, DType::f32, device), v = Tensor::zeros({40000}, DType::f32, device);
    const Tensor g = grad.to(device), count = Tensor::full({1}, 7.0, DType::f64, device);
    AdamWHyper h;
    h.step = 1;  // ignored: the count says 7
    const AdamwTensor t{p.raw_data(), g.raw_data(), m.raw_data(), v.raw_data(), 40000};
    RETORT_KERNEL(device, adamw_multi_update, DType::f32, &t, 1, h, nullptr,
                  static_cast<const double*>(count.raw_data()), nullptr);
    return p.to(Device::cpu());
  };
  CHECK(max_rel_error(run(Device::cuda()), run(Device::cpu())) <= 1e-6);
}
}  // TEST_SUITE("gpu")
