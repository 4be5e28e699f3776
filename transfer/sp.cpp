// SP: row-normalised B x B similarity matrices of the student and the teacher, squared Frobenius
// distance over B^2.
#include "transfer/sp.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {

Tensor sp_similarity(const Tensor& f) {
  RETORT_CHECK(f.dim() >= 2, "sp: a tap [B, ...] with at least two dims is needed, got {}", f.str());
  Tensor q = f.reshape({f.size(0), f.numel() / f.size(0)});  // [B, d]
  return l2_normalize(matmul(q, q.transpose(0, 1)), 1);      // [B, B]
}

Tensor sp_loss(const Tensor& f_s, const Tensor& f_t) {
  RETORT_CHECK(f_s.dim() >= 2 && f_t.dim() >= 2 && f_s.size(0) == f_t.size(0),
               "sp: student tap {} and teacher tap {} must have the same batch size", f_s.str(), f_t.str());
  const double B = double(f_s.size(0));
  Tensor g_t;
  {
    NoGradGuard no_grad;
    g_t = sp_similarity(f_t.detach());
  }
  Tensor d = sub(g_t, sp_similarity(f_s));
  return mul(sum(mul(d, d)), 1.0 / (B * B));
}

Tensor SpLoss::compute(const StepInputs& in) {
  return sp_loss(in.student_tap(student_tap_), in.teacher_tap(teacher_, teacher_tap_));
}

std::unique_ptr<SpLoss> make_sp_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::string& student_tap,
                                     const std::string& teacher_tap, const Shape& input) {
  auto lookup = [&](const models::Model& m, const std::string& tap, const std::string& side, const char* key) {
    try {
      find_tap(m, tap, input, "sp", side);
    } catch (const Error& e) {
      if (m.family() != "vit") throw;
      fail("{} (a ViT has no stage taps: set `{}`, e.g. to \"tokens.<last block>\" or \"pooled\")", e.what(), key);
    }
  };
  lookup(student, student_tap, "student", "student_tap");
  lookup(teacher, teacher_tap, "teacher '" + teacher_name + "'", "teacher_tap");
  return std::make_unique<SpLoss>(teacher_name, student_tap, teacher_tap);
}

void register_sp_loss() {
  register_loss(
      "sp",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose batch similarities are matched"),
       ParamSpec("student_tap", ValueKind::string, kSpDefaultTap, "the student's tap (any shape: flattened per example)"),
       ParamSpec("teacher_tap", ValueKind::string, kSpDefaultTap, "the teacher's tap (any shape)")},
      "SP (Tung 2019): ||normalize(Q_t Q_t^T) - normalize(Q_s Q_s^T)||_F^2 / B^2 over the batch; weight 3000",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          return make_sp_loss(stage_student(c), teacher, c.args->string("teacher"), c.args->string("student_tap"),
                              c.args->string("teacher_tap"), c.input_shape);
        });
      },
      kSpDefaultWeight);
}

}  // namespace retort::transfer
