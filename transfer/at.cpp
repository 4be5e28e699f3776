// AT: normalised channel-mean-of-|f|^p attention maps, mean squared difference per stage, summed.
#include "transfer/at.h"
#include <algorithm>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {

Tensor attention_map(const Tensor& f, double p) {
  RETORT_CHECK(f.dim() == 4, "at: attention_map needs a map [B, C, H, W], got {}", f.str());
  RETORT_CHECK(p >= 1.0, "at: p must be >= 1, got {}", p);
  // |f|^p; for p = 2 simply f*f (exact, and RepDistiller's f.pow(2))
  Tensor powered = p == 2.0 ? mul(f, f) : pow(abs(f), p);
  Tensor a = mean(powered, {1});                                    // [B, H, W]
  return l2_normalize(a.reshape({f.size(0), f.size(2) * f.size(3)}), 1);  // [B, H*W]
}

AtStageMaps at_stage_maps(const Tensor& f_s, const Tensor& f_t, double p) {
  RETORT_CHECK(f_s.dim() == 4 && f_t.dim() == 4 && f_s.size(0) == f_t.size(0),
               "at: student map {} and teacher map {} must be [B, C, H, W] with the same B", f_s.str(), f_t.str());
  AtStageMaps m;
  m.h = std::min(f_s.size(2), f_t.size(2));
  m.w = std::min(f_s.size(3), f_t.size(3));
  {
    NoGradGuard no_grad;
    m.teacher = attention_map(pool_to(f_t.detach(), m.h, m.w, PoolMode::average), p);
  }
  m.student = attention_map(pool_to(f_s, m.h, m.w, PoolMode::average), p);
  return m;
}

Tensor at_stage_loss(const Tensor& f_s, const Tensor& f_t, double p) {
  AtStageMaps m = at_stage_maps(f_s, f_t, p);
  Tensor d = sub(m.student, m.teacher);
  return mean(mul(d, d));
}

std::vector<Tensor> at_stage_losses(const std::vector<Tensor>& s, const std::vector<Tensor>& t, double p) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "at: {} student maps but {} teacher maps", s.size(), t.size());
  std::vector<Tensor> terms;
  for (size_t k = 0; k < s.size(); ++k) terms.push_back(at_stage_loss(s[k], t[k], p));
  return terms;
}

Tensor at_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t, double p) {
  Tensor total;
  for (const Tensor& term : at_stage_losses(s, t, p)) total = total.defined() ? add(total, term) : term;
  return total;
}

AtLoss::AtLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t,
               double p)
    : taps_(std::move(teacher), "at"), p_(p) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "at: {} student taps but {} teacher taps", s.size(), t.size());
  RETORT_CHECK(p >= 1.0, "at: p must be >= 1, got {}", p);
  for (size_t k = 0; k < s.size(); ++k) {
    for (const auto* tap : {&s[k], &t[k]}) {
      const bool student = tap == &s[k];
      RETORT_CHECK(tap_kind(*tap, student ? "at: student" : "at: teacher") != TapKind::vector,
                   "at: {} tap '{}' is a vector {}; attention transfer needs a spatial map [B, C, H, W] or ViT "
                   "tokens [B, 1+h*w, D] (a vector has no positions to attend to): pick a stage or tokens.<i> tap",
                   student ? "student" : "teacher", tap->name, shape_str(tap->shape));
    }
    taps_.add(s[k], t[k]);
  }
}

Tensor AtLoss::compute(const std::vector<Tensor>& s, const std::vector<Tensor>& t) {
  auto m = taps_.maps(s, t);
  const std::vector<Tensor> terms = at_stage_losses(m.student, m.teacher, p_);
  last_pairs_.clear();
  Tensor total;
  for (const Tensor& term : terms) {
    last_pairs_.push_back(term.detach());
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

Tensor AtLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::map<std::string, Tensor> AtLoss::step_stats(const StepInputs& in) const {
  (void)in;  // the step's inputs are those of the last compute()
  std::map<std::string, Tensor> out;
  for (size_t k = 0; k < last_pairs_.size(); ++k) out["pair" + std::to_string(k)] = last_pairs_[k];
  return out;
}

std::map<std::string, Tensor> AtLoss::pictures(const StepInputs& in) const {
  auto x = taps_.gather(in);
  auto m = taps_.maps(x.student, x.teacher);
  std::map<std::string, Tensor> out;
  for (size_t k = 0; k < m.student.size(); ++k) {
    AtStageMaps a = at_stage_maps(m.student[k], m.teacher[k], p_);
    const Shape grid{a.student.size(0), a.h, a.w};
    out["student.pair" + std::to_string(k)] = a.student.detach().reshape(grid);
    out["teacher.pair" + std::to_string(k)] = a.teacher.detach().reshape(grid);
  }
  return out;
}

std::vector<std::string> at_default_taps() { return {"stage1", "stage2", "stage3"}; }

std::unique_ptr<AtLoss> make_at_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::vector<std::string>& student_taps,
                                     const std::vector<std::string>& teacher_taps, const Shape& input, double p) {
  RETORT_CHECK(!student_taps.empty() && student_taps.size() == teacher_taps.size(),
               "at: {} student taps [{}] but {} teacher taps [{}]; stage k pairs student_taps[k] with "
               "teacher_taps[k]",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(),
               fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "at",
                             VitTapHint::any_tap);
  return std::make_unique<AtLoss>(teacher_name, taps.student, taps.teacher, p);
}

void register_at_loss() {
  register_loss(
      "at",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose attention maps are matched"),
       ParamSpec("student_taps", ValueKind::strings, ParamValue(at_default_taps()),
                 "the student's maps (or ViT tokens.<i>), stage k paired with teacher_taps[k]"),
       ParamSpec("teacher_taps", ValueKind::strings, ParamValue(at_default_taps()),
                 "the teacher's maps (or ViT tokens.<i>), as many as student_taps"),
       ParamSpec("p", ValueKind::number, kAtDefaultP, "exponent of the attention map mean_c |f|^p").at_least(1.0)},
      "AT (Zagoruyko 2017): sum over stages of mean (a_s - a_t)^2, a = normalize(mean_c |f|^p); weight 1000",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          return make_at_loss(stage_student(c), teacher, c.args->string("teacher"), c.args->strings("student_taps"),
                              c.args->strings("teacher_taps"), c.input_shape, c.args->number("p"));
        });
      },
      kAtDefaultWeight);
}

}  // namespace retort::transfer
