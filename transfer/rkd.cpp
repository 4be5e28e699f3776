// RKD: distance and angle relations between the examples of a batch (see transfer/rkd.h).
#include "transfer/rkd.h"
#include <limits>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

// 1 off the diagonal, 0 on it; [B, B].
Tensor off_diagonal(int64_t b, DType dtype, Device device) {
  std::vector<double> m(size_t(b * b), 1.0);
  for (int64_t i = 0; i < b; ++i) m[size_t(i * b + i)] = 0.0;
  return Tensor::from_vector(m, {b, b}, dtype, device);
}

Tensor as_rows(const Tensor& x, const char* what) {
  RETORT_CHECK(x.defined() && x.dim() >= 2, "rkd: {} features must be [B, ...] with at least 2 dims, got {}", what,
               x.defined() ? x.str() : std::string("undefined"));
  RETORT_CHECK(x.size(0) >= 2,
               "rkd: {} features {} hold one example; distances and angles need a batch of at least 2", what, x.str());
  RETORT_CHECK(is_floating(x.dtype()), "rkd: {} features must be floating, got {}", what, x.str());
  return x.dim() == 2 ? x : x.flatten(1);
}

void check_pair(const Tensor& s, const Tensor& t) {
  RETORT_CHECK(s.size(0) == t.size(0) && s.dtype() == t.dtype() && s.device() == t.device(),
               "rkd: student features {} and teacher features {} must share batch size, dtype and device", s.str(),
               t.str());
}

}  // namespace

Tensor rkd_pairwise_distances(const Tensor& x_in) {
  Tensor x = as_rows(x_in, "the");
  Tensor sq = clamp(pairwise_sq_dist(x, x), kRkdDistanceEps, std::numeric_limits<double>::infinity());
  return mul(sqrt(sq), off_diagonal(x.size(0), x.dtype(), x.device()));
}

Tensor rkd_normalized_distances(const Tensor& x) {
  Tensor psi = rkd_pairwise_distances(x);
  // mean over the positive entries: psi >= 0, so their sum over all entries / their count
  Tensor count;
  {
    NoGradGuard no_grad;
    count = sum(gt(psi.detach(), 0.0).to(psi.dtype()));
  }
  return div(psi, div(sum(psi), count));
}

Tensor rkd_angles(const Tensor& x_in) {
  Tensor x = as_rows(x_in, "the");
  Tensor d = sub(x.unsqueeze(0), x.unsqueeze(1));  // d[i, j] = x_j - x_i   [B, B, D]
  // e_ii = normalize(0) = 0 already; the mask (same values) also stops any gradient at the zero
  // vectors, where the normalisation's derivative is 1/eps = 1e12 and x_i - x_i cancels it only
  // up to rounding
  Tensor mask = off_diagonal(x.size(0), x.dtype(), x.device()).unsqueeze(2);
  Tensor e = mul(l2_normalize(d, 2, kRkdDistanceEps), mask);
  return matmul(e, e.transpose(1, 2));              // [B, B, B]
}

Tensor rkd_distance_loss(const Tensor& f_s, const Tensor& f_t) {
  Tensor s = as_rows(f_s, "student"), t = as_rows(f_t, "teacher");
  check_pair(s, t);
  Tensor target;
  {
    NoGradGuard no_grad;
    target = rkd_normalized_distances(t.detach());
  }
  return smooth_l1_loss(rkd_normalized_distances(s), target, 1.0, Reduction::mean);
}

Tensor rkd_angle_loss(const Tensor& f_s, const Tensor& f_t) {
  Tensor s = as_rows(f_s, "student"), t = as_rows(f_t, "teacher");
  check_pair(s, t);
  Tensor target;
  {
    NoGradGuard no_grad;
    target = rkd_angles(t.detach());
  }
  return smooth_l1_loss(rkd_angles(s), target, 1.0, Reduction::mean);
}

Tensor rkd_loss(const Tensor& f_s, const Tensor& f_t, const RkdOptions& o) {
  RETORT_CHECK(o.distance_weight >= 0 && o.angle_weight >= 0 && o.distance_weight + o.angle_weight > 0,
               "rkd: distance_weight {} and angle_weight {} must be >= 0, not both 0", o.distance_weight,
               o.angle_weight);
  Tensor total;
  if (o.distance_weight > 0) total = mul(rkd_distance_loss(f_s, f_t), o.distance_weight);
  if (o.angle_weight > 0) {
    Tensor a = mul(rkd_angle_loss(f_s, f_t), o.angle_weight);
    total = total.defined() ? add(total, a) : a;
  }
  return total;
}

RkdLoss::RkdLoss(std::string teacher, std::string student_tap, std::string teacher_tap, const RkdOptions& options)
    : teacher_(std::move(teacher)),
      student_tap_(std::move(student_tap)),
      teacher_tap_(std::move(teacher_tap)),
      options_(options) {
  RETORT_CHECK(options_.distance_weight >= 0 && options_.angle_weight >= 0 &&
                   options_.distance_weight + options_.angle_weight > 0,
               "rkd: distance_weight ({}) and angle_weight ({}) must not both be 0", options_.distance_weight,
               options_.angle_weight);
}

Tensor RkdLoss::compute(const StepInputs& in) {
  return rkd_loss(in.student_tap(student_tap_), in.teacher_tap(teacher_, teacher_tap_), options_);
}

void register_rkd_loss() {
  register_loss(
      "rkd",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose feature relations are matched"),
       ParamSpec("student_tap", ValueKind::string, "pooled", "the student's tap (flattened to [B, -1])"),
       ParamSpec("teacher_tap", ValueKind::string, "pooled", "the teacher's tap (flattened to [B, -1])"),
       ParamSpec("distance_weight", ValueKind::number, kRkdDistanceWeight, "weight of the distance term (0: off)")
           .at_least(0),
       ParamSpec("angle_weight", ValueKind::number, kRkdAngleWeight, "weight of the angle term (0: off)")
           .at_least(0)},
      "RKD (Park 2019): 25 * SmoothL1 of mean-normalised pairwise distances + 50 * SmoothL1 of triplet angles",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const std::string& teacher = c.args->string("teacher");
          const models::Model& teacher_model = stage_teacher(c);
          const models::Model& student = stage_student(c);
          RkdOptions o;
          o.distance_weight = c.args->number("distance_weight");
          o.angle_weight = c.args->number("angle_weight");
          RETORT_CHECK(o.distance_weight + o.angle_weight > 0,
                       "rkd: distance_weight and angle_weight are both 0; the loss would be constant");
          const auto s = find_tap(student, c.args->string("student_tap"), c.input_shape, "rkd", "student");
          const auto t = find_tap(teacher_model, c.args->string("teacher_tap"), c.input_shape, "rkd",
                                  "teacher '" + teacher + "'");
          return std::make_unique<RkdLoss>(teacher, s.name, t.name, o);
        });
      },
      kRkdDefaultWeight);
}

}  // namespace retort::transfer
