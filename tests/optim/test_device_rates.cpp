// Learning rates on the device (engine/optim/device_rates.h): a rate is filled only when it
// changes and keeps its address; the multi-tensor kernels given a rate pointer compute what the
// rate by value gives, bitwise; an optimizer whose schedule changes the rate every step matches
// the single-tensor reference with each step's rate; and after a replayed step the host-side
// counters (AdamW's steps, the device step counter's mirror) are those two eager steps leave.
// On a GPU (suite "gpu"): the CUDA kernels reading the rate from device memory against the CPU.
#include "engine/kernel_call.h"
#include "engine/optim/adamw.h"
#include "engine/optim/device_rates.h"
#include "engine/optim/sgd.h"
#include "helpers.h"
#include "kernels/optim.h"

using namespace retort;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {
ParamGroup group_of(std::vector<Tensor> params, double lr) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = 0.01;
  return g;
}

std::vector<Tensor> params_of(const std::vector<Shape>& shapes, uint64_t seed) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(random_tensor(s, seed++, -1, 1, DType::f32).requires_grad_(true));
  return out;
}

// A multi-tensor update of one fresh parameter by `update(tensor, h, lr_pointer)`; returns it.
template <typename Update>
Tensor one_update(double h_lr, const double* lr, Update update) {
  Tensor p = random_tensor({37}, 52, -1, 1, DType::f32);
  update(p, h_lr, lr);
  return p;
}
}  // namespace

TEST_CASE("device rates: filled when the rate changes, at a fixed address") {
  DeviceRates rates;
  rates.write(0, 0.1, Device::cpu());
  rates.write(1, 0.2, Device::cpu());
  CHECK(rates.fills() == 2);
  const double* first = rates.pointer(0, Device::cpu());
  CHECK(*first == 0.1);
  CHECK(*rates.pointer(1, Device::cpu()) == 0.2);
  rates.write(0, 0.1, Device::cpu());  // unchanged: nothing queued
  CHECK(rates.fills() == 2);
  rates.write(0, 0.05, Device::cpu());
  CHECK(rates.fills() == 3);
  CHECK(rates.pointer(0, Device::cpu()) == first);  // a captured graph keeps reading it
  CHECK(*first == 0.05);
  CHECK_THROWS_WITH_AS(rates.pointer(2, Device::cpu()), doctest::Contains("no learning rate of group 2"), Error);
}

TEST_CASE("device rates: the multi-tensor kernels read the rate from memory, bitwise the rate by value") {
  const Tensor grad = random_tensor({37}, 51, -1, 1, DType::f32);
  auto sgd = [&](Tensor& p, double h_lr, const double* lr) {
    Tensor buf = Tensor::full({37}, 0.5, DType::f32);
    SgdHyper h;
    h.lr = h_lr;
    h.momentum = 0.9;
    h.weight_decay = 0.01;
    const SgdTensor t{p.raw_data(), grad.raw_data(), buf.raw_data(), 37};
    cpu::sgd_multi_update(DType::f32, &t, 1, h, nullptr, lr);
  };
  auto adamw = [&](Tensor& p, double h_lr, const double* lr) {
    Tensor m = Tensor::full({37}, 0.1, DType::f32), v = Tensor::full({37}, 0.2, DType::f32);
    AdamWHyper h;
    h.lr = h_lr;
    h.step = 3;
    const AdamwTensor t{p.raw_data(), grad.raw_data(), m.raw_data(), v.raw_data(), 37};
    cpu::adamw_multi_update(DType::f32, &t, 1, h, nullptr, nullptr, lr);
  };
  const double rate = 0.037;
  CHECK(same_bits(one_update(1.0, &rate, sgd), one_update(rate, nullptr, sgd)));  // h.lr is ignored
  CHECK(same_bits(one_update(1.0, &rate, adamw), one_update(rate, nullptr, adamw)));
  CHECK_FALSE(same_bits(one_update(1.0, nullptr, sgd), one_update(rate, nullptr, sgd)));
}

TEST_CASE("device rates: a schedule changing the rate every step matches the reference, SGD and AdamW") {
  for (bool adam : {false, true}) {
    INFO((adam ? "AdamW" : "SGD"));
    std::vector<Tensor> params = params_of({{5}, {3, 4}}, 10);
    std::vector<Tensor> copies;
    for (const Tensor& p : params) copies.push_back(p.detach().clone());
    std::unique_ptr<Optimizer> opt;
    if (adam) opt = std::make_unique<AdamW>(std::vector<ParamGroup>{group_of(params, 0.1)});
    else opt = std::make_unique<SGD>(std::vector<ParamGroup>{group_of(params, 0.1)}, SgdOptions{0.9, true});
    std::vector<Optimizer::ParamState> states(params.size());
    for (int step = 0; step < 5; ++step) {
      const double lr = 0.1 / (1 + step);  // a new rate each step
      opt->set_lr(lr);
      ParamGroup reference = opt->groups()[0];
      for (size_t i = 0; i < params.size(); ++i) {
        const Tensor g = random_tensor(params[i].shape(), 100 + 10 * uint64_t(step) + i, -1, 1, DType::f32);
        params[i].set_grad(g);
        if (adam) adamw_update_param(reference, AdamWOptions{}, copies[i], g, states[i]);
        else sgd_update_param(reference, SgdOptions{0.9, true}, copies[i], g, states[i]);
      }
      opt->step();
    }
    for (size_t i = 0; i < params.size(); ++i) CHECK(same_bits(params[i].detach(), copies[i]));
  }
}

TEST_CASE("device rates: after a replayed step the host counters are those of two eager steps") {
  auto run = [](bool replayed) {
    std::vector<Tensor> params = params_of({{5}, {3, 4}}, 20);
    AdamW opt({group_of(params, 0.01)});
    for (int step = 0; step < 2; ++step) {
      for (size_t i = 0; i < params.size(); ++i)
        params[i].set_grad(random_tensor(params[i].shape(), 200 + 10 * uint64_t(step) + i, -1, 1, DType::f32));
      if (step == 1 && replayed) opt.note_replayed_step(opt.last_updated());  // what a replay leaves the host
      else opt.step();
    }
    return opt.export_state();
  };
  const OptimizerState eager = run(false), replayed = run(true);
  CHECK(eager.scalars == replayed.scalars);
  CHECK(eager.scalars.at("group0.param0.step") == 2.0);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda device rates: SGD and AdamW read the rate from device memory, against the CPU") {
  if (test::skip_without_gpu("CUDA test, learning rates on the device")) return;
  const Tensor grad = random_tensor({40000}, 61, -1, 1, DType::f32);
  auto run = [&](Device device, bool adam) {
    Tensor p = random_tensor({40000}, 62, -1, 1, DType::f32).to(device);
    Tensor a = Tensor::full({40000}, 0.1, DType::f32, device), b = Tensor::full({40000}, 0.2, DType::f32, device);
    const Tensor g = grad.to(device), lr = Tensor::full({1}, 0.037, DType::f64, device);
    const auto* lr_on_device = static_cast<const double*>(lr.raw_data());
    if (adam) {
      AdamWHyper h;
      h.lr = 1.0;  // ignored: the rate in memory says 0.037
      h.step = 3;
      const AdamwTensor t{p.raw_data(), g.raw_data(), a.raw_data(), b.raw_data(), 40000};
      RETORT_KERNEL(device, adamw_multi_update, DType::f32, &t, 1, h, nullptr, nullptr, lr_on_device);
    } else {
      SgdHyper h;
      h.lr = 1.0;
      h.momentum = 0.9;
      const SgdTensor t{p.raw_data(), g.raw_data(), a.raw_data(), 40000};
      RETORT_KERNEL(device, sgd_multi_update, DType::f32, &t, 1, h, nullptr, lr_on_device);
    }
    return p.to(Device::cpu());
  };
  for (bool adam : {false, true}) {
    INFO((adam ? "AdamW" : "SGD"));
    CHECK(max_rel_error(run(Device::cuda(), adam), run(Device::cpu(), adam)) <= 1e-6);
  }
}
}  // TEST_SUITE("gpu")
