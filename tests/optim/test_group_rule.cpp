// A parameter group with an update rule of its own (GroupRule): under an SGD optimizer, a group
// marked adamw gets exactly AdamW's update (and an SGD group under AdamW gets SGD's), keeps
// that rule's state, and exports/imports it for checkpoints.
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "helpers.h"

using namespace retort;
using retort::test::random_tensor;

namespace {
// Three steps with fixed gradients; returns the parameter's values.
std::vector<double> run_steps(Optimizer& opt, Tensor& p, const Tensor& grad) {
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    p.set_grad(mul(grad, double(step + 1)));
    opt.step();
  }
  return p.to_vector();
}

ParamGroup group_of(Tensor p, double lr, double wd, GroupRule rule = GroupRule::optimizer) {
  ParamGroup g;
  g.params = {p};
  g.lr = lr;
  g.weight_decay = wd;
  g.rule = rule;
  return g;
}
}  // namespace

TEST_CASE("optim: a group's own rule gives exactly that optimizer's update") {
  const Tensor init = random_tensor({5, 3}, 11), grad = random_tensor({5, 3}, 12);
  // Reference: plain AdamW and plain SGD on copies.
  Tensor pa = init.clone().requires_grad_(true), ps = init.clone().requires_grad_(true);
  AdamW adam({group_of(pa, 0.01, 0.0)});
  SGD sgd({group_of(ps, 0.1, 5e-4)}, SgdOptions{0.9, true});
  const auto want_adam = run_steps(adam, pa, grad);
  const auto want_sgd = run_steps(sgd, ps, grad);
  // Mixed: SGD optimizer with an adamw group, and AdamW optimizer with an sgd group.
  Tensor qa = init.clone().requires_grad_(true), qs = init.clone().requires_grad_(true);
  Tensor other = init.clone().requires_grad_(true);
  SGD mixed({group_of(other, 0.1, 5e-4), group_of(qa, 0.01, 0.0, GroupRule::adamw)}, SgdOptions{0.9, true});
  CHECK(run_steps(mixed, qa, grad) == want_adam);  // bit-identical
  ParamGroup sg = group_of(qs, 0.1, 5e-4, GroupRule::sgd);
  sg.momentum = 0.9;
  sg.nesterov = true;
  AdamW mixed2({sg});
  CHECK(run_steps(mixed2, qs, grad) == want_sgd);
  // The adamw group's state survives export/import (a checkpoint), under the SGD optimizer.
  const OptimizerState state = mixed.export_state();
  bool has_moments = false;
  for (const auto& [name, t] : state.tensors) has_moments |= name == "group1.param0.exp_avg_sq";
  CHECK(has_moments);
  CHECK(state.scalars.at("group1.param0.step") == 3.0);
  Tensor qa2 = qa.detach().clone().requires_grad_(true), other2 = other.detach().clone().requires_grad_(true);
  SGD restored({group_of(other2, 0.1, 5e-4), group_of(qa2, 0.01, 0.0, GroupRule::adamw)}, SgdOptions{0.9, true});
  restored.import_state(state);
  const OptimizerState again = restored.export_state();
  CHECK(again.scalars == state.scalars);
  CHECK(again.tensors.size() == state.tensors.size());
}
