// EvalRecord <-> JSON (see train/metrics.h).
#include "train/metrics.h"
#include "engine/error.h"

namespace retort {
namespace {
// NaN and infinities are not JSON numbers: they become null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double number_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}
}  // namespace

nlohmann::json to_json(const EvalRecord& r) {
  nlohmann::json j = {{"stage", r.stage},
                      {"model", r.model},
                      {"epoch", r.epoch},
                      {"step", r.step},
                      {"split", r.split},
                      {"loss", number_or_null(r.loss)},
                      {"top1", number_or_null(r.top1)},
                      {"top5", number_or_null(r.top5)},
                      {"images_per_s", number_or_null(r.images_per_s)},
                      {"wall_s", number_or_null(r.wall_s)},
                      {"train_loss", number_or_null(r.train_loss)},
                      {"train_top1", number_or_null(r.train_top1)},
                      {"eval_images_per_s", number_or_null(r.eval_images_per_s)},
                      {"nonfinite_logits", r.nonfinite_logits}};
  if (!r.loss_stats.empty()) {
    nlohmann::json stats = nlohmann::json::object();
    for (const auto& [k, v] : r.loss_stats) stats[k] = number_or_null(v);
    j["loss_stats"] = stats;
  }
  return j;
}

EvalRecord eval_record_from_json(const nlohmann::json& j) {
  RETORT_CHECK(j.is_object() && j.contains("stage") && j.contains("model"),
               "an evaluation record needs 'stage' and 'model': {}", j.dump());
  EvalRecord r;
  r.stage = j.at("stage").get<std::string>();
  r.model = j.at("model").get<std::string>();
  r.epoch = j.value("epoch", int64_t{0});
  r.step = j.value("step", int64_t{0});
  r.split = j.value("split", std::string());
  r.loss = number_or_nan(j, "loss");
  r.top1 = number_or_nan(j, "top1");
  r.top5 = number_or_nan(j, "top5");
  r.images_per_s = number_or_nan(j, "images_per_s");
  r.wall_s = number_or_nan(j, "wall_s");
  r.train_loss = number_or_nan(j, "train_loss");
  r.train_top1 = number_or_nan(j, "train_top1");
  r.eval_images_per_s = number_or_nan(j, "eval_images_per_s");
  r.nonfinite_logits = j.value("nonfinite_logits", int64_t{0});
  if (auto it = j.find("loss_stats"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items()) r.loss_stats[k] = v.is_number() ? v.get<double>() : NAN;
  return r;
}

}  // namespace retort
