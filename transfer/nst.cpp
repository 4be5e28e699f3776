// NST: squared MMD with a degree-2 polynomial kernel between the normalised channel patterns of
// the student's and the teacher's maps, summed over stages.
#include "transfer/nst.h"
#include <algorithm>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

// [B, C, h, w] -> [B, C, h*w] with every channel's pattern L2-normalised.
Tensor channel_patterns(const Tensor& f) {
  return l2_normalize(f.reshape({f.size(0), f.size(1), f.size(2) * f.size(3)}), 2);
}

}  // namespace

Tensor nst_poly_kernel(const Tensor& u_x, const Tensor& u_y) {
  RETORT_CHECK(u_x.dim() == 3 && u_y.dim() == 3 && u_x.size(0) == u_y.size(0) && u_x.size(2) == u_y.size(2),
               "nst: channel patterns {} and {} must be [B, C, n] with the same B and n", u_x.str(), u_y.str());
  Tensor dots = matmul(u_x, u_y.transpose(1, 2));  // [B, C_x, C_y]
  return mul(dots, dots);
}

Tensor nst_stage_loss(const Tensor& f_s, const Tensor& f_t) {
  RETORT_CHECK(f_s.dim() == 4 && f_t.dim() == 4 && f_s.size(0) == f_t.size(0),
               "nst: student map {} and teacher map {} must be [B, C, H, W] with the same B", f_s.str(), f_t.str());
  const int64_t h = std::min(f_s.size(2), f_t.size(2)), w = std::min(f_s.size(3), f_t.size(3));
  Tensor u_t, k_tt;
  {
    NoGradGuard no_grad;
    u_t = channel_patterns(pool_to(f_t.detach(), h, w, PoolMode::average));
    k_tt = mean(nst_poly_kernel(u_t, u_t));
  }
  Tensor u_s = channel_patterns(pool_to(f_s, h, w, PoolMode::average));
  Tensor k_ss = mean(nst_poly_kernel(u_s, u_s));
  Tensor k_st = mean(nst_poly_kernel(u_s, u_t));
  return add(sub(k_ss, mul(k_st, 2.0)), k_tt);
}

Tensor nst_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "nst: {} student maps but {} teacher maps", s.size(), t.size());
  Tensor total;
  for (size_t k = 0; k < s.size(); ++k) {
    Tensor term = nst_stage_loss(s[k], t[k]);
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

NstLoss::NstLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t)
    : taps_(std::move(teacher), "nst") {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "nst: {} student taps but {} teacher taps", s.size(), t.size());
  for (size_t k = 0; k < s.size(); ++k) {
    for (const auto* tap : {&s[k], &t[k]}) {
      const bool student = tap == &s[k];
      RETORT_CHECK(tap_kind(*tap, student ? "nst: student" : "nst: teacher") != TapKind::vector,
                   "nst: {} tap '{}' is a vector {}; NST matches the distribution of each channel's spatial "
                   "pattern and needs a map [B, C, H, W] or ViT tokens [B, 1+h*w, D]: pick a stage or tokens.<i> "
                   "tap",
                   student ? "student" : "teacher", tap->name, shape_str(tap->shape));
    }
    taps_.add(s[k], t[k]);
  }
}

Tensor NstLoss::compute(const std::vector<Tensor>& s, const std::vector<Tensor>& t) {
  auto m = taps_.maps(s, t);
  return nst_loss(m.student, m.teacher);
}

Tensor NstLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::vector<std::string> nst_default_taps() { return {"stage1", "stage2", "stage3"}; }

std::unique_ptr<NstLoss> make_nst_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, const std::vector<std::string>& student_taps,
                                       const std::vector<std::string>& teacher_taps, const Shape& input) {
  RETORT_CHECK(!student_taps.empty() && student_taps.size() == teacher_taps.size(),
               "nst: {} student taps [{}] but {} teacher taps [{}]; stage k pairs student_taps[k] with "
               "teacher_taps[k]",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(),
               fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "nst",
                             VitTapHint::any_tap);
  return std::make_unique<NstLoss>(teacher_name, taps.student, taps.teacher);
}

void register_nst_loss() {
  register_loss(
      "nst",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose channel-pattern distribution is matched"),
       ParamSpec("student_taps", ValueKind::strings, ParamValue(nst_default_taps()),
                 "the student's maps (or ViT tokens.<i>), stage k paired with teacher_taps[k]"),
       ParamSpec("teacher_taps", ValueKind::strings, ParamValue(nst_default_taps()),
                 "the teacher's maps (or ViT tokens.<i>), as many as student_taps")},
      "NST (Huang 2017): sum over stages of MMD^2 between normalised channel patterns, kernel (a.b)^2; weight 50",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          return make_nst_loss(stage_student(c), teacher, c.args->string("teacher"), c.args->strings("student_taps"),
                               c.args->strings("teacher_taps"), c.input_shape);
        });
      },
      kNstDefaultWeight);
}

}  // namespace retort::transfer
