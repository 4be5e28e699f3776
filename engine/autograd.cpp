// The autograd tape walk: topological order, gradient accumulation, graph freeing.
#include "engine/autograd.h"
#include <unordered_map>
#include <unordered_set>
#include "engine/autocast.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/profiler.h"
#include "engine/kernel_call.h"
#include "engine/ops/broadcast.h"
#include "kernels/binary.h"
#include "kernels/cuda/cuda_api.h"

namespace retort {
namespace {
thread_local bool g_grad_enabled = true;

// Whether `t` is the only handle on its memory: no other tensor (view, saved input, the
// caller's copy) can see a write into it.
bool exclusively_owned(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1 && t.is_contiguous();
}

// acc += g. When several ops use one tensor its gradients add up here: in place when `acc` is
// exclusively owned (a gradient that only this walk holds), which saves an allocation and a pass
// over memory per extra use; otherwise into a new tensor.
void accumulate(Tensor& acc, const Tensor& g) {
  profiler::Range range("accumulate grad", profiler::Kind::backward);
  if (range.on()) range.set_shapes({&acc, &g});
  if (exclusively_owned(acc) && g.shape() == acc.shape() && g.dtype() == acc.dtype() && g.device() == acc.device()) {
    const Layout la = broadcast_layout(acc, acc.shape()), lg = broadcast_layout(g, acc.shape());
    RETORT_KERNEL(acc.device(), binary, BinaryOp::add, acc.dtype(), acc.raw_data(), la, g.raw_data(), lg,
                  acc.raw_data(), acc.numel());
    return;
  }
  acc = add(acc, g);
}

// The gradient a view node may add its own into in place: its input's pending gradient, when
// the node can do that (backward_into), the input is not a leaf, and nothing else holds it.
Tensor* view_input_grad(const Node& node, std::unordered_map<Node*, Tensor>& grads) {
  if (!node.backward_into || node.inputs.size() != 1) return nullptr;
  const Tensor& in = node.inputs[0];
  if (!in.defined() || !in.requires_grad() || !in.impl()->grad_fn) return nullptr;
  auto slot = grads.find(in.impl()->grad_fn.get());
  if (slot == grads.end() || !exclusively_owned(slot->second) || slot->second.shape() != in.shape()) return nullptr;
  return &slot->second;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}
bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& out, const char* name, std::vector<Tensor> inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(fn);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - int64_t(shape.size());
  RETORT_CHECK(lead >= 0, "sum_to: gradient {} has fewer dims than {}", grad.str(), shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[size_t(i - lead)] == 1 && grad.shape()[size_t(i)] != 1) dims.push_back(i);
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, true);
  return r.reshape(shape);
}

void Tensor::backward(const Tensor& grad_output) const {
  RETORT_CHECK(requires_grad(), "backward() on a tensor that does not require grad ({})", str());
  Tensor seed = grad_output;
  if (!seed.defined()) {
    RETORT_CHECK(numel() == 1, "backward() without a gradient needs a scalar, got {}", str());
    seed = Tensor::ones(shape(), dtype(), device());
  }
  RETORT_CHECK(seed.shape() == shape(), "backward(): gradient {} does not match {}", seed.str(), str());
  NoGradGuard no_grad;
  // Every recorded op already has inputs of one dtype: backward casts nothing (TF32 stays).
  AutocastScope no_casts(autocast::casting() ? Precision::f32 : autocast::current());

  if (is_leaf()) {
    impl()->grad = impl()->grad.defined() ? add(impl()->grad, seed) : seed.clone();
    return;
  }
  // Iterative DFS for a reverse topological order (deep ResNets overflow recursion).
  // Nodes are held by shared_ptr for the whole walk: freeing a node's inputs below would
  // otherwise free the nodes still waiting in `order`.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{grad_fn(), 0}};
  visited.insert(grad_fn().get());
  while (!stack.empty()) {
    auto& top = stack.back();
    if (top.second < top.first->inputs.size()) {
      const Tensor& in = top.first->inputs[top.second++];
      if (in.defined() && in.impl()->grad_fn && visited.insert(in.impl()->grad_fn.get()).second) {
        std::shared_ptr<Node> child = in.impl()->grad_fn;
        stack.push_back({std::move(child), 0});
      }
    } else {
      order.push_back(std::move(top.first));
      stack.pop_back();
    }
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = grads.find(node);
    if (found == grads.end()) continue;
    Tensor g = std::move(found->second);
    grads.erase(found);
    RETORT_CHECK(node->backward, "backward through '{}' a second time: the first backward freed that graph",
                 node->name);
    if (Tensor* input_grad = view_input_grad(*node, grads)) {
      {
        profiler::Range range(node->name, profiler::Kind::backward);
        if (range.on()) range.set_shapes({&g});
        node->backward_into(*input_grad, g);
      }
      node->backward = nullptr;
      node->backward_into = nullptr;
      node->inputs.clear();
      continue;
    }
    std::vector<Tensor> gin;
    {
      profiler::Range range(node->name, profiler::Kind::backward);
      if (range.on()) range.set_shapes({&g});
      gin = node->backward(g);
    }
    RETORT_CHECK(gin.size() == node->inputs.size(), "autograd: backward of '{}' returned {} grads for {} inputs",
                 node->name, gin.size(), node->inputs.size());
    for (size_t i = 0; i < gin.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!gin[i].defined() || !in.defined() || !in.requires_grad()) continue;
      RETORT_CHECK(gin[i].shape() == in.shape(), "autograd: '{}' gave a gradient {} for input {} of shape {}",
                   node->name, gin[i].str(), i, shape_str(in.shape()));
      if (Node* child = in.impl()->grad_fn.get()) {
        auto [slot, fresh] = grads.try_emplace(child, gin[i]);
        if (!fresh) accumulate(slot->second, gin[i]);
      } else {
        Tensor& acc = in.impl()->grad;
        if (acc.defined()) accumulate(acc, gin[i]);
        else acc = gin[i].contiguous().clone();
      }
    }
    // Free the graph as we go: saved tensors and edges are released.
    node->backward = nullptr;
    node->backward_into = nullptr;
    node->inputs.clear();
  }
}

}  // namespace retort
