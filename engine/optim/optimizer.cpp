// Optimizer base: groups, step (multi-tensor) / zero_grad, lr access, state export/import;
// make_param_groups.
#include "engine/optim/optimizer.h"
#include <algorithm>
#include <charconv>
#include <set>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "engine/optim/update_batch.h"

namespace retort {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses "group<g>.param<p>.<key>" or "group<g>.<key>"; p = -1 for the group form.
bool parse_state_name(const std::string& name, size_t& g, int64_t& p, std::string& key) {
  auto number_after = [&](size_t pos, const char* prefix, size_t& value, size_t& end) {
    size_t len = std::char_traits<char>::length(prefix);
    if (name.compare(pos, len, prefix) != 0) return false;
    const char* b = name.data() + pos + len;
    auto [ptr, ec] = std::from_chars(b, name.data() + name.size(), value);
    if (ec != std::errc() || ptr == b || ptr == name.data() + name.size() || *ptr != '.') return false;
    end = size_t(ptr - name.data()) + 1;
    return true;
  };
  size_t end = 0, pi = 0;
  if (!number_after(0, "group", g, end)) return false;
  if (number_after(end, "param", pi, end)) p = int64_t(pi);
  else p = -1;
  key = name.substr(end);
  return !key.empty();
}
}  // namespace

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named_params, double lr,
                                          double weight_decay, bool no_decay_on_norm_and_bias) {
  ParamGroup decay, no_decay;
  decay.name = "decay";
  no_decay.name = "no_decay";
  decay.lr = no_decay.lr = lr;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = no_decay_on_norm_and_bias ? 0.0 : weight_decay;
  for (const auto& [name, p] : named_params) {
    RETORT_CHECK(p.defined(), "make_param_groups: parameter '{}' is undefined", name);
    if (!p.requires_grad()) continue;
    bool exempt = no_decay_on_norm_and_bias && (ends_with(name, ".bias") || p.dim() <= 1);
    ParamGroup& g = exempt ? no_decay : decay;
    g.params.push_back(p);
    g.names.push_back(name);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, std::string name) : name_(std::move(name)), groups_(std::move(groups)) {
  RETORT_CHECK(!groups_.empty(), "{}: no parameter groups given", name_);
  state_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    RETORT_CHECK(group.lr >= 0, "{}: group {} has a negative lr {}", name_, g, group.lr);
    RETORT_CHECK(group.weight_decay >= 0, "{}: group {} has a negative weight_decay {}", name_, g, group.weight_decay);
    RETORT_CHECK(group.names.empty() || group.names.size() == group.params.size(),
                 "{}: group {} has {} names for {} params", name_, g, group.names.size(), group.params.size());
    group.initial_lr = group.lr;
    state_[g].resize(group.params.size());
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      RETORT_CHECK(p.defined(), "{}: {} is undefined", name_, param_label(g, i));
      RETORT_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64,
                   "{}: {} is {}; optimizers update f32 or f64 parameters (keep an f32 master copy)", name_,
                   param_label(g, i), p.str());
      RETORT_CHECK(p.is_contiguous(), "{}: {} is not contiguous; parameters must own dense storage", name_,
                   param_label(g, i));
    }
  }
  check_no_parameter_twice();
}

// A parameter listed twice would be updated twice, and twice in one multi-tensor launch is a race.
void Optimizer::check_no_parameter_twice() const {
  std::map<const TensorImpl*, std::pair<size_t, size_t>> seen;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      auto [at, fresh] = seen.try_emplace(groups_[g].params[i].impl(), g, i);
      RETORT_CHECK(fresh, "{}: {} is also {}; a parameter may appear only once", name_, param_label(g, i),
                   param_label(at->second.first, at->second.second));
    }
}

std::string Optimizer::param_label(size_t g, size_t i) const {
  const ParamGroup& group = groups_[g];
  if (i < group.names.size()) return fmt::format("parameter '{}' (group {}, index {})", group.names[i], g, i);
  return fmt::format("parameter {} of group {}", i, g);
}

Tensor Optimizer::dense_grad(size_t g, size_t i) const {
  const Tensor& param = groups_[g].params[i];
  Tensor grad = param.grad();
  if (!grad.defined()) return grad;
  RETORT_CHECK(grad.shape() == param.shape() && grad.device() == param.device(),
               "{}: the gradient of {} is {} but the parameter is {}", name_, param_label(g, i), grad.str(),
               param.str());
  return grad.to(param.dtype()).contiguous();
}

void Optimizer::step(const Tensor& skip_if_nonzero) {
  NoGradGuard no_grad;
  check_skip_flag(skip_if_nonzero);
  write_rates();
  step_counter_.begin_step();
  UpdateBatch batch;
  last_updated_.clear();
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Tensor grad = dense_grad(g, i);
      if (!grad.defined()) continue;
      const Tensor& param = group.params[i];
      const double* lr = rates_.pointer(g, param.device());
      switch (group.rule) {
        case GroupRule::optimizer: enqueue(group, param, grad, state_[g][i], batch, lr); break;
        case GroupRule::sgd: sgd_enqueue_param(group, SgdOptions{}, param, grad, state_[g][i], batch, lr); break;
        case GroupRule::adamw:
          adamw_enqueue_param(group, AdamWOptions{}, param, grad, state_[g][i], step_counter_, batch, lr);
          break;
      }
      last_updated_.emplace_back(g, i);
    }
  }
  batch.launch(skip_if_nonzero);
}

void Optimizer::write_rates() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::optional<Device> last;  // a group's parameters are nearly always on one device
    for (const Tensor& p : groups_[g].params)
      if (p.device() != last) rates_.write(g, groups_[g].lr, *(last = p.device()));
  }
}

void Optimizer::note_replayed_step(const UpdatedParams& updated) {
  for (const auto& [g, i] : updated)
    if (auto it = state_[g][i].scalars.find("step"); it != state_[g][i].scalars.end()) it->second += 1;
  step_counter_.note_replayed_step();
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.params) p.zero_grad();
}

double Optimizer::lr(size_t group) const {
  RETORT_CHECK(group < groups_.size(), "{}: group {} does not exist ({} groups)", name_, group, groups_.size());
  return groups_[group].lr;
}
void Optimizer::set_lr(size_t group, double lr) {
  RETORT_CHECK(group < groups_.size(), "{}: group {} does not exist ({} groups)", name_, group, groups_.size());
  RETORT_CHECK(lr >= 0, "{}: lr must be non-negative, got {}", name_, lr);
  groups_[group].lr = lr;
}
void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

OptimizerState Optimizer::export_state() const {
  OptimizerState out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    out.scalars[fmt::format("group{}.lr", g)] = groups_[g].lr;
    out.scalars[fmt::format("group{}.weight_decay", g)] = groups_[g].weight_decay;
    for (size_t i = 0; i < state_[g].size(); ++i) {
      for (const auto& [key, t] : state_[g][i].tensors)
        out.tensors.emplace_back(fmt::format("group{}.param{}.{}", g, i, key), t.detach().clone());
      for (const auto& [key, v] : state_[g][i].scalars) out.scalars[fmt::format("group{}.param{}.{}", g, i, key)] = v;
    }
  }
  return out;
}

void Optimizer::import_state(const OptimizerState& state) {
  // The state each group keeps: the optimizer's, or that of the group's own rule.
  std::vector<std::vector<std::string>> tensor_keys(groups_.size()), scalar_keys(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    switch (groups_[g].rule) {
      case GroupRule::optimizer:
        tensor_keys[g] = tensor_state_keys(), scalar_keys[g] = scalar_state_keys();
        break;
      case GroupRule::sgd:
        if (groups_[g].momentum.value_or(SgdOptions{}.momentum) != 0.0) tensor_keys[g] = {"momentum_buffer"};
        break;
      case GroupRule::adamw: tensor_keys[g] = {"exp_avg", "exp_avg_sq"}, scalar_keys[g] = {"step"}; break;
    }
  }
  auto has = [](const std::vector<std::string>& v, const std::string& k) { return std::find(v.begin(), v.end(), k) != v.end(); };
  std::vector<std::string> problems;
  std::vector<std::vector<ParamState>> fresh(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) fresh[g].resize(groups_[g].params.size());
  std::vector<double> lrs(groups_.size()), wds(groups_.size());
  std::vector<bool> lr_seen(groups_.size(), false), wd_seen(groups_.size(), false);

  // Resolves a name to (group, param, key); records a problem and returns false when it fits nothing.
  auto locate = [&](const std::string& name, size_t& g, int64_t& p, std::string& key) {
    if (!parse_state_name(name, g, p, key)) {
      problems.push_back(fmt::format("unexpected '{}': not of the form group<g>.param<p>.<key>", name));
      return false;
    }
    if (g >= groups_.size()) {
      problems.push_back(fmt::format("unexpected '{}': this {} has {} groups", name, name_, groups_.size()));
      return false;
    }
    if (p >= int64_t(groups_[g].params.size())) {
      problems.push_back(fmt::format("unexpected '{}': group {} has {} parameters", name, g, groups_[g].params.size()));
      return false;
    }
    return true;
  };
  for (const auto& [name, t] : state.tensors) {
    size_t g;
    int64_t p;
    std::string key;
    if (!locate(name, g, p, key)) continue;
    if (p < 0 || !has(tensor_keys[g], key)) {
      problems.push_back(fmt::format("unexpected tensor '{}': {} keeps no tensor state '{}'", name, name_, key));
      continue;
    }
    const Tensor& param = groups_[g].params[size_t(p)];
    if (!t.defined() || t.shape() != param.shape()) {
      problems.push_back(fmt::format("mismatched '{}': saved {} but {} is {}", name, t.str(), param_label(g, size_t(p)),
                                     param.str()));
      continue;
    }
    Tensor copy = Tensor::empty(param.shape(), param.dtype(), param.device());
    copy.copy_(t);
    fresh[g][size_t(p)].tensors[key] = copy;
  }
  for (const auto& [name, v] : state.scalars) {
    size_t g;
    int64_t p;
    std::string key;
    if (!locate(name, g, p, key)) continue;
    if (p < 0 && key == "lr") { lrs[g] = v; lr_seen[g] = true; }
    else if (p < 0 && key == "weight_decay") { wds[g] = v; wd_seen[g] = true; }
    else if (p >= 0 && has(scalar_keys[g], key)) fresh[g][size_t(p)].scalars[key] = v;
    else problems.push_back(fmt::format("unexpected scalar '{}': {} keeps no scalar state '{}'", name, name_, key));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < fresh[g].size(); ++i) {  // a parameter's state is all there or not at all
      const ParamState& ps = fresh[g][i];
      if (ps.tensors.empty() && ps.scalars.empty()) continue;
      for (const auto& k : tensor_keys[g])
        if (!ps.tensors.count(k)) problems.push_back(fmt::format("missing tensor 'group{}.param{}.{}'", g, i, k));
      for (const auto& k : scalar_keys[g])
        if (!ps.scalars.count(k)) problems.push_back(fmt::format("missing scalar 'group{}.param{}.{}'", g, i, k));
    }
    if (!lr_seen[g]) problems.push_back(fmt::format("missing 'group{}.lr'", g));
    if (!wd_seen[g]) problems.push_back(fmt::format("missing 'group{}.weight_decay'", g));
  }
  if (!problems.empty())
    fail("{}: the optimizer state does not fit this optimizer ({} problem{}):\n  {}", name_, problems.size(),
         problems.size() == 1 ? "" : "s", fmt::join(problems, "\n  "));
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = lrs[g];
    groups_[g].weight_decay = wds[g];
  }
  state_ = std::move(fresh);
  step_counter_.reset();  // started again, from the imported step counts, at the next step
}

}  // namespace retort
