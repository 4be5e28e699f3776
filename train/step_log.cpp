// Term labels and the logged step's one host read (see train/step_log.h).
#include "train/step_log.h"
#include <algorithm>
#include <fmt/format.h>
#include "engine/ops.h"

namespace retort {

std::vector<std::string> term_labels(const StageSpec& stage) {
  std::vector<std::string> out;
  const auto& terms = stage.losses;
  for (size_t i = 0; i < terms.size(); ++i) {
    const std::string& kind = terms[i].name;
    const auto same_kind = std::count_if(terms.begin(), terms.end(), [&](const LossTerm& t) { return t.name == kind; });
    out.push_back(same_kind > 1 ? fmt::format("{}#{}", kind, i) : kind);
  }
  return out;
}

StepProbe::Values StepProbe::read() const {
  std::vector<Tensor> parts;
  const auto add_value = [&](const Tensor& t) { parts.push_back(t.detach().to(DType::f64).reshape({1})); };
  for (const auto& t : terms) add_value(t);
  if (grad_norm.defined()) add_value(grad_norm);
  for (const auto& [name, t] : stats) add_value(t);
  Values v;
  if (parts.empty()) return v;
  const std::vector<double> all = concat(parts, 0).to_vector();  // concatenated on the device: one read
  size_t i = 0;
  for (; i < terms.size(); ++i) v.terms.push_back(all[i]);
  if (grad_norm.defined()) v.grad_norm = all[i++];
  for (const auto& [name, t] : stats) v.stats.emplace_back(name, all[i++]);
  return v;
}

}  // namespace retort
