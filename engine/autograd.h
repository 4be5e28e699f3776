// Define-by-run autograd: each differentiable op records a Node holding its inputs and a
// backward function; Tensor::backward() walks the nodes in reverse topological order,
// accumulates gradients into leaves, and frees each node's saved tensors as it goes.
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "engine/tensor.h"

namespace retort {

// grads_in[i] is the gradient for inputs[i] (undefined when it gets none). Backward code
// runs with grad mode off and may use any op; it must not capture its own output undetached
// (that would make a reference cycle): capture out.detach() instead.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

// For a view of one input (slice, select): adds the view's gradient `g` into `input_grad`, the
// input's whole gradient, in place.
using BackwardIntoFn = std::function<void(Tensor& input_grad, const Tensor& g)>;

struct Node {
  std::string name;
  std::vector<Tensor> inputs;
  BackwardFn backward;
  // Optional: when set and the input's gradient already exists (exclusively owned), the walk
  // calls this instead of `backward`, which would zero-fill a whole input-sized tensor only to
  // add it to that gradient (q, k and v cut from one projection: three of each).
  BackwardIntoFn backward_into;
};

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Scope in which no op records history (evaluation, teacher forward, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any of the tensors requires a gradient.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches history to `out` (marks it requires_grad) when needs_grad(inputs). Ops call:
//   if (needs_grad({&a, &b})) record(out, "mul", {a, b}, [=](const Tensor& g) {...});
void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn);

// Reduces a gradient of a broadcast result back to `shape` (sums the broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace retort
