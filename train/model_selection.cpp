// Best-on-validation model selection (see train/model_selection.h).
#include "train/model_selection.h"
#include <filesystem>
#include <fmt/format.h>
#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace retort {

nn::NamedTensors cloned_state(const models::Model& model) {
  nn::NamedTensors out;
  for (const auto& [name, t] : model.state_dict()) out.push_back({name, t.clone()});
  return out;
}

std::string SelectionResult::line() const {
  if (!active) return "";
  const auto one = [](const char* what, int64_t epoch, double val, const EvalResult& test) {
    return fmt::format("{} (epoch {}: validation {:.2f}%, test {:.2f}%)", what, epoch, val, test.top1);
  };
  const std::string best = one("best on validation", best_epoch, best_val_top1, best_test);
  const std::string last = one("last", last_epoch, last_val_top1, last_test);
  if (best_epoch == last_epoch) return fmt::format("kept the last model, also the {}", best);
  return kept == KeepModel::best ? fmt::format("kept the {}; {}", best, last)
                                 : fmt::format("kept the {}; {}", last, best);
}

BestOnValidation::BestOnValidation(std::string file, std::string stage, bool writes, StringMap metadata)
    : file_(std::move(file)), stage_(std::move(stage)), metadata_(std::move(metadata)), writes_(writes) {}

void BestOnValidation::resume(const models::Model& model) {
  if (file_.empty() || !std::filesystem::exists(file_)) return;
  SafetensorsContents saved = read_safetensors(file_);
  const auto stage = saved.metadata.find("stage");
  if (stage == saved.metadata.end() || stage->second != stage_) return;  // another run's file
  RETORT_CHECK(saved.metadata.count("epoch") && saved.metadata.count("val_top1"),
               "{}: the best-on-validation weights lack their epoch and val_top1 metadata", file_);
  best_epoch_ = std::stoll(saved.metadata.at("epoch"));
  best_top1_ = std::stod(saved.metadata.at("val_top1"));
  best_.clear();
  const nn::NamedTensors live = model.state_dict();
  std::map<std::string, Tensor> by_name(saved.tensors.begin(), saved.tensors.end());
  for (const auto& [name, t] : live) {
    auto it = by_name.find(name);
    RETORT_CHECK(it != by_name.end() && it->second.shape() == t.shape(),
                 "{}: the best-on-validation weights do not fit the model (tensor '{}')", file_, name);
    best_.push_back({name, it->second.to(t.device()).to(t.dtype())});
  }
}

bool BestOnValidation::offer(const models::Model& model, int64_t epoch, const EvalResult& validation) {
  if (!validation.finite() || !(validation.top1 > best_top1_)) return false;
  best_top1_ = validation.top1;
  best_epoch_ = epoch;
  best_ = cloned_state(model);
  if (writes_ && !file_.empty()) {
    StringMap metadata = metadata_;
    metadata["stage"] = stage_;
    metadata["epoch"] = std::to_string(epoch);
    metadata["val_top1"] = fmt::format("{:.17g}", validation.top1);
    metadata["val_loss"] = fmt::format("{:.17g}", validation.loss);
    write_safetensors(file_, best_, metadata);
  }
  return true;
}

void BestOnValidation::load_best_into(models::Model& model) const {
  RETORT_CHECK(any(), "stage '{}': no epoch was evaluated on validation, so there is no best model", stage_);
  model.load_state_dict(best_, /*strict=*/true);
}

}  // namespace retort
