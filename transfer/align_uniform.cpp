// Alignment/uniformity distillation: the alignment and uniformity terms, the projection
// heads, the loss term and its registration as "align_uniform".
#include "transfer/align_uniform.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

// 1 where i < j (strict upper triangle), else 0; [B, B].
Tensor strict_upper_mask(int64_t b, DType dtype, Device device) {
  std::vector<double> m(size_t(b * b), 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = i + 1; j < b; ++j) m[size_t(i * b + j)] = 1.0;
  return Tensor::from_vector(m, {b, b}, dtype, device);
}

int64_t pooled_dim(const models::Model& model, const Shape& input, const std::string& who) {
  for (const auto& info : model.tap_info(input))
    if (info.name == "pooled") {
      RETORT_CHECK(info.shape.size() == 2, "align_uniform: {}'s tap 'pooled' is {}-d, expected [B, D]", who,
                   info.shape.size());
      return info.shape[1];
    }
  fail("align_uniform: {} ({}) has no 'pooled' tap", who, model.family());
}

}  // namespace

Tensor alignment_loss(const Tensor& z_s, const Tensor& z_t) {
  RETORT_CHECK(z_s.dim() == 2 && z_s.shape() == z_t.shape(),
               "align_uniform: student embeddings {} and teacher embeddings {} must both be [B, D] of one shape",
               z_s.str(), z_t.str());
  Tensor d = sub(z_s, z_t);
  return mean(sum(mul(d, d), {1}));
}

Tensor uniformity_loss(const Tensor& z, double t) {
  RETORT_CHECK(z.dim() == 2 && z.size(0) >= 2, "align_uniform: uniformity needs embeddings [B >= 2, D], got {}",
               z.str());
  RETORT_CHECK(t > 0, "align_uniform: t must be positive, got {}", t);
  const int64_t b = z.size(0);
  const double pairs = double(b) * double(b - 1) / 2.0;
  Tensor k = exp(mul(pairwise_sq_dist(z, z), -t));
  Tensor masked = mul(k, strict_upper_mask(b, z.dtype(), z.device()));
  return log(mul(sum(masked), 1.0 / pairs));
}

AlignUniformTerms align_uniform_terms(const Tensor& z_s, const Tensor& z_t, double t) {
  Tensor unif = mul(add(uniformity_loss(z_s, t), uniformity_loss(z_t, t)), 0.5);
  return {alignment_loss(z_s, z_t), unif};
}

Tensor align_uniform_value(const Tensor& z_s, const Tensor& z_t, double t) {
  AlignUniformTerms terms = align_uniform_terms(z_s, z_t, t);
  return add(terms.alignment, terms.uniformity);
}

ProjectionHead::ProjectionHead(int64_t in_features, int64_t out_features, Generator& gen) {
  fc1 = register_module("fc1", std::make_shared<nn::Linear>(in_features, in_features, gen));
  fc2 = register_module("fc2", std::make_shared<nn::Linear>(in_features, out_features, gen));
}

Tensor ProjectionHead::forward(const Tensor& x) { return l2_normalize(fc2->forward(relu(fc1->forward(x))), 1); }

AlignUniformLoss::AlignUniformLoss(std::string teacher, int64_t student_dim, int64_t teacher_dim, int64_t dim, double t,
                                   uint64_t seed, Device device, DType dtype)
    : teacher_(std::move(teacher)), t_(t) {
  RETORT_CHECK(student_dim > 0 && teacher_dim > 0 && dim > 0,
               "align_uniform: sizes must be positive, got d_s={} d_t={} dim={}", student_dim, teacher_dim, dim);
  RETORT_CHECK(t > 0, "align_uniform: t must be positive, got {}", t);
  Generator gen(seed ^ 0xA11Full);
  student_head = std::make_shared<ProjectionHead>(student_dim, dim, gen);
  teacher_head = std::make_shared<ProjectionHead>(teacher_dim, dim, gen);
  for (auto* h : {student_head.get(), teacher_head.get()}) {
    h->to(dtype);
    h->to(device);
  }
}

AlignUniformTerms AlignUniformLoss::terms(const Tensor& student_features, const Tensor& teacher_features) const {
  RETORT_CHECK(student_features.dim() == 2 && teacher_features.dim() == 2 &&
                   student_features.size(0) == teacher_features.size(0),
               "align_uniform: student features {} and teacher features {} must be [B, d_s] and [B, d_t]",
               student_features.str(), teacher_features.str());
  Tensor z_s = student_head->forward(student_features);
  Tensor z_t = teacher_head->forward(teacher_features.detach());
  return align_uniform_terms(z_s, z_t, t_);
}

Tensor AlignUniformLoss::value(const Tensor& student_features, const Tensor& teacher_features) {
  AlignUniformTerms t = terms(student_features, teacher_features);
  last_ = {t.alignment.detach(), t.uniformity.detach()};
  return add(t.alignment, t.uniformity);
}

Tensor AlignUniformLoss::compute(const StepInputs& in) {
  return value(in.student_tap("pooled"), in.teacher_tap(teacher_, "pooled"));
}

std::map<std::string, Tensor> AlignUniformLoss::step_stats(const StepInputs& in) const {
  (void)in;  // the step's inputs are those of the last compute()
  if (!last_.alignment.defined()) return {};
  return {{"alignment", last_.alignment}, {"uniformity", last_.uniformity}};
}

nn::NamedTensors AlignUniformLoss::parameters() const {
  nn::NamedTensors out;
  for (auto& [n, p] : student_head->named_parameters()) out.push_back({"student_head." + n, p});
  for (auto& [n, p] : teacher_head->named_parameters()) out.push_back({"teacher_head." + n, p});
  return out;
}

void AlignUniformLoss::train(bool on) {
  student_head->train(on);
  teacher_head->train(on);
}

void register_align_uniform_loss() {
  register_loss(
      "align_uniform",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose 'pooled' features are projected"),
       ParamSpec("dim", ValueKind::integer, int64_t{kAlignUniformDefaultDim}, "projection-head output size").positive(),
       ParamSpec("t", ValueKind::number, kAlignUniformDefaultT, "uniformity temperature").positive()},
      "alignment/uniformity distillation (Farhat & Chen 2024): align + (unif(z_s) + unif(z_t)) / 2 on "
      "projection heads",
      [](const BuildContext& c) {
        return with_recipe_line(c, [&] {
          const std::string& name = c.args->string("teacher");
          const int64_t d_t = pooled_dim(stage_teacher(c), c.input_shape, "teacher '" + name + "'");
          const int64_t d_s = pooled_dim(stage_student(c), c.input_shape, "the student");
          return std::make_unique<AlignUniformLoss>(name, d_s, d_t, c.args->integer("dim"), c.args->number("t"),
                                                    c.seed, c.device, student_dtype(c));
        });
      });
}

}  // namespace retort::transfer
