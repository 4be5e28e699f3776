// Writes a Recipe back as TOML with every default filled in (the run directory's
// resolved.toml). The output parses back to an equal Recipe.
#include <sstream>
#include <fmt/format.h>
#include <toml++/toml.h>
#include "train/recipe.h"

namespace retort {
namespace {

// TOML text of strings and floats ("4.0", shortest round-trip digits), shared with loss params.
std::string str(const std::string& s) { return param_to_toml(ParamValue(s)); }
std::string num(double d) { return param_to_toml(ParamValue(d)); }
std::string num(int64_t i) { return fmt::format("{}", i); }
std::string boolean(bool b) { return b ? "true" : "false"; }

template <typename T, typename F>
std::string list(const std::vector<T>& values, F format) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + format(values[i]);
  return out + "]";
}

// A bare key when TOML allows it, else a quoted one.
std::string key(const std::string& k) {
  bool bare = !k.empty();
  for (char c : k)
    bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  return bare ? k : str(k);
}

std::string param_text(const ParamValue& value) { return param_to_toml(value); }

std::string optimizer_text(const OptimizerSettings& o) {
  std::string s = fmt::format("{{ type = {}, lr = {}", str(to_string(o.type)), num(o.lr));
  if (o.type == OptimizerKind::sgd)
    s += fmt::format(", momentum = {}, nesterov = {}", num(o.momentum), boolean(o.nesterov));
  else
    s += fmt::format(", betas = {}, eps = {}", list(o.betas, [](double d) { return num(d); }), num(o.eps));
  return s + fmt::format(", weight_decay = {}, no_decay_norm_bias = {} }}", num(o.weight_decay),
                         boolean(o.no_decay_norm_bias));
}

std::string schedule_text(const ScheduleSettings& s) {
  std::string out = fmt::format("{{ type = {}", str(to_string(s.type)));
  if (s.type == ScheduleKind::multistep)
    out += fmt::format(", milestones = {}, gamma = {}", list(s.milestones, [](int64_t m) { return num(m); }),
                       num(s.gamma));
  if (s.type == ScheduleKind::cosine) out += fmt::format(", min_lr = {}", num(s.min_lr));
  return out + fmt::format(", warmup_epochs = {} }}", num(s.warmup_epochs));
}

std::string loss_text(const LossTerm& term) {
  std::string out = fmt::format("{{ name = {}, weight = {}", str(term.name), num(term.weight));
  for (const auto& [k, p] : term.params) out += fmt::format(", {} = {}", key(k), param_text(p.value));
  return out + " }";
}

}  // namespace

std::string to_toml(const Recipe& r) {
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += key(k) + " = " + v + "\n"; };
  out += "# Resolved recipe: every default filled in";
  out += r.source.empty() ? ".\n" : fmt::format(" (from {}).\n", r.source);

  out += "\n[run]\n";
  line("name", str(r.run.name));
  line("seed", num(r.run.seed));
  line("device", str(r.run.device));
  line("out_dir", str(r.run.out_dir));

  const DataSettings& d = r.data;
  out += "\n[data]\n";
  line("dataset", str(to_string(d.dataset)));
  line("root", str(d.root));
  line("image_size", num(d.image_size));
  line("channels", num(d.channels));
  line("mean", list(d.mean, [](double v) { return num(v); }));
  line("std", list(d.std, [](double v) { return num(v); }));
  line("augment", fmt::format("{{ random_crop_padding = {}, hflip = {} }}", num(d.augment.random_crop_padding),
                              boolean(d.augment.hflip)));
  line("labelled_per_class", num(d.labelled_per_class));
  line("val_size", num(d.val_size));
  line("train_subset", num(d.train_subset));
  line("workers", num(d.workers));
  line("extra_unlabelled_folder", str(d.extra_unlabelled_folder));

  for (const auto& [name, m] : r.models) {
    out += fmt::format("\n[models.{}]\n", key(name));
    line("arch", str(m.arch));
    line("weights", str(m.weights));
    line("from_stage", str(m.from_stage));
    line("frozen", boolean(m.frozen));
    std::string options = "{";
    for (const auto& [k, v] : m.options) options += fmt::format("{} {} = {}", options.size() > 1 ? "," : "", key(k), num(v));
    line("options", options + (m.options.empty() ? "}" : " }"));
  }

  for (const StageSpec& s : r.stages) {
    out += "\n[[stages]]\n";
    line("name", str(s.name));
    line("train", str(s.train));
    line("teachers", list(s.teachers, [](const std::string& t) { return str(t); }));
    line("epochs", num(s.epochs));
    line("batch_size", num(s.batch_size));
    line("eval_every", num(s.eval_every));
    line("optimizer", optimizer_text(s.optimizer));
    line("schedule", schedule_text(s.schedule));
    line("clip_grad_norm", num(s.clip_grad_norm));
    line("data", str(to_string(s.data)));
    line("trainable", str(to_string(s.trainable)));
    line("reset_head", boolean(s.reset_head));
    line("retrieve_k", num(s.retrieve_k));
    line("retrieve_with", str(s.retrieve_with));
    line("retrieve_tap", str(s.retrieve_tap));
    line("teacher_cache", str(to_string(s.teacher_cache)));
    out += "losses = [\n";
    for (const LossTerm& term : s.losses) out += "  " + loss_text(term) + ",\n";
    out += "]\n";
  }
  return out;
}

}  // namespace retort
