// Module: registration, recursive traversal with dotted names, train/eval, device and dtype
// moves, and the state dict.
#include "engine/nn/module.h"
#include <algorithm>
#include <set>
#include "engine/error.h"

namespace retort::nn {

Tensor Module::forward(const Tensor&) {
  fail("{} has no single-tensor forward(); call its own forward overload", type_name());
}

// ---------------------------------------------------------------- registration
void Module::check_new_name(const std::string& name) const {
  RETORT_CHECK(!name.empty() && name.find('.') == std::string::npos,
               "{}: member name '{}' must be non-empty and contain no '.'", type_name(), name);
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& p) { return p.first == name; });
  };
  RETORT_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "{}: name '{}' is registered twice",
               type_name(), name);
}

void Module::register_parameter(const std::string& name, Tensor* slot) {
  check_new_name(name);
  if (slot->defined()) slot->requires_grad_(true);
  params_.emplace_back(name, slot);
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  check_new_name(name);
  buffers_.emplace_back(name, slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  RETORT_CHECK(module != nullptr, "{}: child '{}' is null", type_name(), name);
  module->train(training_);
  children_.emplace_back(name, std::move(module));
}

// ---------------------------------------------------------------- traversal
void Module::collect(NamedTensors& out, const std::string& prefix, bool params, bool recurse) const {
  for (const auto& [name, slot] : params ? params_ : buffers_)
    if (slot->defined()) out.emplace_back(prefix + name, *slot);
  if (!recurse) return;
  for (const auto& [name, child] : children_) child->collect(out, prefix + name + ".", params, true);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect(out, "", true, recurse);
  return out;
}
NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect(out, "", false, recurse);
  return out;
}
std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}
std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [name, child] : children_) out.emplace_back(name, child.get());
  return out;
}

void Module::collect_modules(std::vector<std::pair<std::string, Module*>>& out, const std::string& prefix) const {
  for (const auto& [name, child] : children_) {
    std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child.get());
    child->collect_modules(out, full);
  }
}
std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out{{"", const_cast<Module*>(this)}};
  collect_modules(out, "");
  return out;
}

Module* Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c.get();
  return nullptr;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

// ---------------------------------------------------------------- mode and placement
void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

namespace {
// Replaces the contents of t's impl with `moved` so every handle to t sees the change.
void replace_in_place(const Tensor& t, const Tensor& moved) {
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->offset = moved.offset();
  impl->shape = moved.shape();
  impl->strides = moved.strides();
  impl->dtype = moved.dtype();
  impl->grad = Tensor();
}
}  // namespace

void Module::to(Device device) {
  for (auto& [name, t] : state_dict())
    if (t.device() != device) replace_in_place(t, t.detach().to(device));
}

void Module::to(DType dtype) {
  RETORT_CHECK(is_floating(dtype), "Module::to: {} is not a floating dtype", dtype_name(dtype));
  for (auto& [name, t] : state_dict())
    if (is_floating(t.dtype()) && t.dtype() != dtype) replace_in_place(t, t.detach().to(dtype).contiguous());
}

Device Module::device() const {
  auto sd = state_dict();
  return sd.empty() ? Device::cpu() : sd.front().second.device();
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

void Module::requires_grad_(bool on) {
  for (auto& t : parameters()) t.requires_grad_(on);
}

// ---------------------------------------------------------------- state dict
NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  for (auto& nb : named_buffers()) out.push_back(nb);
  // The handles keep the module's TensorImpl (so in-place moves and loads reach the module).
  return out;
}

Tensor* Module::find_tensor(const std::string& dotted) {
  auto dot = dotted.find('.');
  if (dot == std::string::npos) {
    for (auto& [n, slot] : params_)
      if (n == dotted && slot->defined()) return slot;
    for (auto& [n, slot] : buffers_)
      if (n == dotted && slot->defined()) return slot;
    return nullptr;
  }
  Module* c = child(dotted.substr(0, dot));
  return c ? c->find_tensor(dotted.substr(dot + 1)) : nullptr;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& dict, bool strict) {
  LoadReport report;
  std::set<std::string> own;
  for (auto& [name, t] : state_dict()) {
    own.insert(name);
    auto it = dict.find(name);
    if (it == dict.end()) {
      report.missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    // A scalar buffer (num_batches_tracked) accepts a one-element tensor of any rank.
    bool scalar_ok = t.numel() == 1 && src.numel() == 1;
    RETORT_CHECK(src.shape() == t.shape() || scalar_ok, "load_state_dict: '{}' has shape {} in the module but {} in the dict",
                 name, shape_str(t.shape()), shape_str(src.shape()));
  }
  for (auto& [name, t] : dict)
    if (!own.count(name)) report.unexpected.push_back(name);
  if (strict && (!report.missing.empty() || !report.unexpected.empty()))
    fail("load_state_dict into {}: missing keys [{}], unexpected keys [{}] (pass strict=false to load the rest)",
         type_name(), fmt::join(report.missing, ", "), fmt::join(report.unexpected, ", "));
  for (auto& [name, t] : state_dict()) {
    auto it = dict.find(name);
    if (it == dict.end()) continue;
    Tensor dst = t;
    dst.copy_(it->second.detach().reshape(t.shape()));
  }
  for (auto& [n, m] : named_modules()) m->on_state_loaded();
  return report;
}

LoadReport Module::load_state_dict(const NamedTensors& dict, bool strict) {
  std::map<std::string, Tensor> m;
  for (auto& [n, t] : dict) {
    RETORT_CHECK(!m.count(n), "load_state_dict: key '{}' appears twice", n);
    m[n] = t;
  }
  return load_state_dict(m, strict);
}

// ---------------------------------------------------------------- printing
void Module::str_into(std::string& out, const std::string& name, int indent) const {
  out += std::string(size_t(indent) * 2, ' ');
  if (!name.empty()) out += "(" + name + "): ";
  out += type_name() + "(" + extra_repr() + ")\n";
  for (auto& [n, c] : children_) c->str_into(out, n, indent + 1);
}
std::string Module::str() const {
  std::string out;
  str_into(out, "", 0);
  return out;
}

}  // namespace retort::nn

namespace retort::nn {
void Module::state_loaded_externally() {
  for (auto& [n, m] : named_modules()) m->on_state_loaded();
}
}  // namespace retort::nn
