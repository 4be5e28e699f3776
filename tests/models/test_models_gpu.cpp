// GPU: a model moved with Module::to(cuda) gives the CPU's logits, taps and gradients.
#include "helpers.h"
#include "models/registry.h"

using namespace retort;
using namespace retort::models;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
void check_model_parity(const std::string& name, const ModelConfig& cfg, const Shape& input) {
  auto cpu_model = create_model(name, cfg), gpu_model = create_model(name, cfg);
  gpu_model->to(Device::cuda());
  CHECK(gpu_model->device() == Device::cuda());
  Tensor x = random_tensor(input, 3, -1, 1, DType::f32);
  Taps cpu_taps, gpu_taps;
  Tensor lc = cpu_model->forward(x, &cpu_taps), lg = gpu_model->forward(x.to(Device::cuda()), &gpu_taps);
  CHECK(max_rel_error(lg.to(Device::cpu()), lc) < 1e-4);
  for (auto& [tap, t] : cpu_taps) {
    INFO(name << " tap " << tap);
    CHECK(max_rel_error(gpu_taps.at(tap).to(Device::cpu()), t) < 1e-4);
  }
  sum(mul(lc, lc)).backward();
  sum(mul(lg, lg)).backward();
  for (auto& [pname, p] : cpu_model->named_parameters()) {
    Tensor g = gpu_model->find_tensor(pname)->grad();
    INFO(name << " grad " << pname);
    REQUIRE(g.defined());
    CHECK(max_rel_error(g.to(Device::cpu()), p.grad()) < 1e-3);
  }
  // Running statistics were updated identically.
  for (auto& [bname, b] : cpu_model->named_buffers()) {
    INFO(name << " buffer " << bname);
    CHECK(max_rel_error(gpu_model->find_tensor(bname)->to(Device::cpu()), b) < 1e-4);
  }
}
}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("cuda parity: models (resnet8, wrn_16_1, resnet18, vit_tiny) forward, taps, gradients") {
    RETORT_REQUIRE_GPU();
    ModelConfig cfg;
    cfg.in_channels = 1;
    cfg.num_classes = 10;
    cfg.image_size = 28;
    check_model_parity("resnet8", cfg, {3, 1, 28, 28});
    check_model_parity("wrn_16_1", cfg, {3, 1, 28, 28});
    check_model_parity("resnet18", cfg, {2, 1, 28, 28});
    cfg.depth = 2;
    check_model_parity("vit_tiny", cfg, {2, 1, 28, 28});
  }
}
