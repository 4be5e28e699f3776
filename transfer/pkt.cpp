// PKT: cosine-kernel neighbour distributions of the batch, teacher vs student (see transfer/pkt.h).
#include "transfer/pkt.h"
#include <limits>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

Tensor as_rows(const Tensor& x, const char* what) {
  RETORT_CHECK(x.defined() && x.dim() >= 2 && x.size(0) >= 1,
               "pkt: {} features must be [B, ...] with at least 2 dims, got {}", what,
               x.defined() ? x.str() : std::string("undefined"));
  RETORT_CHECK(is_floating(x.dtype()), "pkt: {} features must be floating, got {}", what, x.str());
  return x.dim() == 2 ? x : x.flatten(1);
}

}  // namespace

Tensor pkt_probabilities(const Tensor& x_in, double eps) {
  RETORT_CHECK(eps > 0, "pkt: eps must be positive, got {}", eps);
  Tensor x = as_rows(x_in, "the");
  const double floor = double(std::numeric_limits<float>::min());
  Tensor norm = sqrt(clamp(sum(mul(x, x), {1}, true), floor, std::numeric_limits<double>::infinity()));
  Tensor xn = div(x, add(norm, eps));
  xn = where(eq(xn, xn), xn, Tensor::zeros({}, xn.dtype(), xn.device()));  // NaN -> 0, as the reference
  Tensor k = mul(add(matmul(xn, xn.transpose(0, 1)), 1.0), 0.5);
  return div(k, sum(k, {1}, true));
}

Tensor pkt_loss(const Tensor& f_s, const Tensor& f_t, double eps) {
  Tensor s = as_rows(f_s, "student"), t = as_rows(f_t, "teacher");
  RETORT_CHECK(s.size(0) == t.size(0) && s.dtype() == t.dtype() && s.device() == t.device(),
               "pkt: student features {} and teacher features {} must share batch size, dtype and device", s.str(),
               t.str());
  Tensor p_t;
  {
    NoGradGuard no_grad;
    p_t = pkt_probabilities(t.detach(), eps);
  }
  Tensor p_s = pkt_probabilities(s, eps);
  return mean(mul(p_t, log(div(add(p_t, eps), add(p_s, eps)))));
}

PktLoss::PktLoss(std::string teacher, std::string student_tap, std::string teacher_tap, double eps)
    : teacher_(std::move(teacher)),
      student_tap_(std::move(student_tap)),
      teacher_tap_(std::move(teacher_tap)),
      eps_(eps) {
  RETORT_CHECK(eps > 0, "pkt: eps must be positive, got {}", eps);
}

Tensor PktLoss::compute(const StepInputs& in) {
  return pkt_loss(in.student_tap(student_tap_), in.teacher_tap(teacher_, teacher_tap_), eps_);
}

void register_pkt_loss() {
  register_loss(
      "pkt",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose neighbour distributions are matched"),
       ParamSpec("student_tap", ValueKind::string, "pooled", "the student's tap (flattened to [B, -1])"),
       ParamSpec("teacher_tap", ValueKind::string, "pooled", "the teacher's tap (flattened to [B, -1])"),
       ParamSpec("eps", ValueKind::number, kPktDefaultEps, "added to the norms and inside the log ratio").positive()},
      "PKT (Passalis 2018): KL between cosine-kernel neighbour distributions of teacher and student, mean over B^2",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const std::string& teacher = c.args->string("teacher");
          const models::Model& teacher_model = stage_teacher(c);
          const auto s = find_tap(stage_student(c), c.args->string("student_tap"), c.input_shape, "pkt", "student");
          const auto t = find_tap(teacher_model, c.args->string("teacher_tap"), c.input_shape, "pkt",
                                  "teacher '" + teacher + "'");
          return std::make_unique<PktLoss>(teacher, s.name, t.name, c.args->number("eps"));
        });
      },
      kPktDefaultWeight);
}

}  // namespace retort::transfer
