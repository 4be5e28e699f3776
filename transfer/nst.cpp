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
    : teacher_(std::move(teacher)) {
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
    student_taps_.push_back(s[k].name);
    teacher_taps_.push_back(t[k].name);
    student_to_map_.push_back(make_to_map(s[k], "nst: student"));
    teacher_to_map_.push_back(make_to_map(t[k], "nst: teacher"));
  }
}

Tensor NstLoss::compute(const std::vector<Tensor>& s, const std::vector<Tensor>& t) {
  RETORT_CHECK(s.size() == student_taps_.size() && t.size() == teacher_taps_.size(),
               "nst: {} student and {} teacher tensors for {} tap pairs", s.size(), t.size(), student_taps_.size());
  std::vector<Tensor> sm, tm;
  for (size_t k = 0; k < s.size(); ++k) {
    sm.push_back(student_to_map_[k]->forward(s[k]));
    NoGradGuard no_grad;
    tm.push_back(teacher_to_map_[k]->forward(t[k].detach()));
  }
  return nst_loss(sm, tm);
}

Tensor NstLoss::compute(const StepInputs& in) {
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < student_taps_.size(); ++k) {
    s.push_back(in.student_tap(student_taps_[k]));
    t.push_back(in.teacher_tap(teacher_, teacher_taps_[k]));
  }
  return compute(s, t);
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
  auto lookup = [&](const models::Model& m, const std::string& tap, const std::string& side, const char* key) {
    try {
      return find_tap(m, tap, input, "nst", side);
    } catch (const Error& e) {
      if (m.family() != "vit") throw;
      fail("{} (a ViT has no stage taps: name its token taps in `{}`, e.g. [\"tokens.1\", \"tokens.2\", "
           "\"tokens.3\"])",
           e.what(), key);
    }
  };
  std::vector<models::TapInfo> s, t;
  for (size_t k = 0; k < student_taps.size(); ++k) {
    s.push_back(lookup(student, student_taps[k], "student", "student_taps"));
    t.push_back(lookup(teacher, teacher_taps[k], "teacher '" + teacher_name + "'", "teacher_taps"));
  }
  return std::make_unique<NstLoss>(teacher_name, s, t);
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
        const std::string where = c.args->where;
        const std::string& teacher = c.args->string("teacher");
        auto it = c.teachers.find(teacher);
        RETORT_CHECK(it != c.teachers.end() && it->second,
                     "{}: loss 'nst' reads teacher '{}', which is not a teacher of this stage", where, teacher);
        RETORT_CHECK(c.student, "{}: loss 'nst' built without a student model", where);
        try {
          return make_nst_loss(*c.student, *it->second, teacher, c.args->strings("student_taps"),
                               c.args->strings("teacher_taps"), c.input_shape);
        } catch (const Error& e) {
          fail("{}: {}", where, e.what());
        }
      },
      kNstDefaultWeight);
}

}  // namespace retort::transfer
