// Module: the base of every layer and model. A module owns named parameters (trainable
// tensors), named buffers (running statistics and other state) and named child modules;
// recursive accessors give PyTorch-style dotted names ("layer1.0.conv1.weight"), which are
// also the state-dict keys used for checkpoints and for loading torchvision/timm weights.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "engine/tensor.h"

namespace retort::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found: keys the module has but the dict lacks, and the reverse.
struct LoadReport {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Modules register pointers to their own members: they are neither copied nor moved.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual std::string type_name() const { return "Module"; }
  // Single-tensor forward (layers, Sequential). Modules without one throw.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- traversal (registration order, dotted names; undefined optional tensors skipped)
  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<Tensor> parameters() const;
  std::vector<Tensor> buffers() const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  std::vector<std::pair<std::string, Module*>> named_modules() const;  // self first, named ""
  Module* child(const std::string& name) const;  // direct child or nullptr
  int64_t num_parameters(bool trainable_only = false) const;

  // ---- mode: train() / eval() propagate to every descendant
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- placement: tensors are changed in place (every handle, e.g. an optimizer's, sees
  // the new device/dtype); gradients are dropped. to(DType) converts floating tensors only.
  void to(Device device);
  void to(DType dtype);
  Device device() const;  // of the first parameter or buffer (cpu when there is none)
  void zero_grad();
  void requires_grad_(bool on);  // freeze (false) or unfreeze every parameter

  // ---- state dict: parameters then buffers, detached handles sharing the module's storage.
  NamedTensors state_dict() const;
  // Copies values in (converting device/dtype); shapes must match. With strict, any missing
  // or unexpected key is an error that lists them; otherwise they are reported.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& dict, bool strict = true);
  LoadReport load_state_dict(const NamedTensors& dict, bool strict = true);
  // Tells every module that its tensors were overwritten from outside (e.g. a checkpoint
  // loaded in place), so cached state such as BatchNorm's batch counter is re-read.
  void state_loaded_externally();
  // The parameter or buffer with this dotted name, or nullptr.
  Tensor* find_tensor(const std::string& dotted_name);

  // "Conv2d(3, 16, kernel=3...)" style one-line description, and an indented tree.
  virtual std::string extra_repr() const { return ""; }
  std::string str() const;

 protected:
  // slot points at a member Tensor; an undefined slot (e.g. bias=false) is skipped by the
  // traversals. Parameters are marked requires_grad.
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // Called after train()/eval() on this module and after load_state_dict wrote its tensors.
  virtual void on_state_loaded() {}

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void collect(NamedTensors& out, const std::string& prefix, bool params, bool recurse) const;
  void collect_modules(std::vector<std::pair<std::string, Module*>>& out, const std::string& prefix) const;
  void str_into(std::string& out, const std::string& name, int indent) const;

  bool training_ = true;
  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace retort::nn
