// Adaptive Feature Transfer: kernel distance between student and weighted teacher features,
// its dense / rbf / linear variants, the loss term and its registration as "aft".
#include "transfer/aft.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

void check_features(const Tensor& phi, const Tensor& psi) {
  RETORT_CHECK(phi.dim() == 2 && psi.dim() == 2 && phi.size(0) == psi.size(0),
               "aft: student features {} and teacher features {} must be [B, d_s] and [B, d_t] with the same B",
               phi.str(), psi.str());
  RETORT_CHECK(phi.size(0) >= 2, "aft: needs a batch of at least 2 (features are centred over the batch), got {}",
               phi.str());
}

Tensor kernel_of(const Tensor& x, bool rbf) {
  if (rbf) return exp(neg(pairwise_sq_dist(x, x)));
  return matmul(x, x.transpose(0, 1));
}

// The size of a model's "pooled" tap for the stage's input shape.
int64_t pooled_dim(const models::Model& model, const Shape& input, const std::string& who) {
  for (const auto& info : model.tap_info(input))
    if (info.name == "pooled") {
      RETORT_CHECK(info.shape.size() == 2, "aft: {}'s tap 'pooled' is {}-d, expected [B, D]", who, info.shape.size());
      return info.shape[1];
    }
  fail("aft: {} ({}) has no 'pooled' tap", who, model.family());
}

}  // namespace

AftVariant parse_aft_variant(const std::string& name) {
  if (name == "kernel") return AftVariant::kernel;
  if (name == "dense") return AftVariant::dense;
  if (name == "rbf") return AftVariant::rbf;
  if (name == "linear") return AftVariant::linear;
  fail("aft: unknown variant '{}'; valid: kernel, dense, rbf, linear", name);
}

Tensor aft_center_normalize(const Tensor& x) {
  RETORT_CHECK(x.dim() == 2, "aft: features must be [B, D], got {}", x.str());
  Tensor centred = sub(x, mean(x, {0}, /*keepdim=*/true));
  Tensor norm = sqrt(sum(mul(centred, centred), {1}, /*keepdim=*/true));
  return div(centred, add(norm, 1e-8));
}

Tensor aft_kernel_distance(const Tensor& phi, const Tensor& psi_weighted, bool rbf) {
  check_features(phi, psi_weighted);
  Tensor ks = kernel_of(aft_center_normalize(phi), rbf);
  Tensor kt = kernel_of(aft_center_normalize(psi_weighted), rbf);
  Tensor diff = sub(ks, kt);
  return sqrt(add(mean(mul(diff, diff)), 1e-8));
}

Tensor aft_kernel_loss(const Tensor& phi, const Tensor& psi, const Tensor& s, bool rbf) {
  RETORT_CHECK(s.dim() == 1 && psi.dim() == 2 && s.size(0) == psi.size(1),
               "aft: s {} must be [d_t] for teacher features {}", s.str(), psi.str());
  return aft_kernel_distance(phi, mul(psi, sigmoid(s)), rbf);
}

AftLoss::AftLoss(std::vector<std::string> teacher_names, int64_t student_dim, int64_t teacher_dim,
                 const AftOptions& options, uint64_t seed, Device device, DType dtype)
    : teacher_names_(std::move(teacher_names)), student_dim_(student_dim), teacher_dim_(teacher_dim), options_(options) {
  RETORT_CHECK(student_dim > 0 && teacher_dim > 0, "aft: feature sizes must be positive, got d_s={} d_t={}",
               student_dim, teacher_dim);
  RETORT_CHECK(options.rho_lr > 0, "aft: rho_lr must be positive, got {}", options.rho_lr);
  switch (options.variant) {
    case AftVariant::kernel:
    case AftVariant::rbf:
      s = Tensor::zeros({teacher_dim}, dtype, device);  // rho = sigmoid(0) = 0.5
      if (options.learn_rho) s.requires_grad_(true);
      break;
    case AftVariant::dense: {
      std::vector<double> eye(size_t(teacher_dim * teacher_dim), 0.0);
      for (int64_t i = 0; i < teacher_dim; ++i) eye[size_t(i * teacher_dim + i)] = 1.0;
      dense = Tensor::from_vector(eye, {teacher_dim, teacher_dim}, dtype, device).requires_grad_(true);
      break;
    }
    case AftVariant::linear: {
      Generator gen(seed ^ 0xAF7ull);
      map = std::make_shared<nn::Linear>(teacher_dim, student_dim, gen);
      map->to(dtype);
      map->to(device);
      break;
    }
  }
}

Tensor AftLoss::rho() const {
  RETORT_CHECK(s.defined(), "aft: rho exists only for the kernel and rbf variants");
  return sigmoid(s);
}

Tensor AftLoss::value(const Tensor& phi, const Tensor& psi_in) const {
  check_features(phi, psi_in);
  RETORT_CHECK(phi.size(1) == student_dim_ && psi_in.size(1) == teacher_dim_,
               "aft: expected student features [B, {}] and teacher features [B, {}], got {} and {}", student_dim_,
               teacher_dim_, phi.str(), psi_in.str());
  Tensor psi = psi_in.detach();
  switch (options_.variant) {
    case AftVariant::kernel: return aft_kernel_loss(phi, psi, s, false);
    case AftVariant::rbf: return aft_kernel_loss(phi, psi, s, true);
    case AftVariant::dense: return aft_kernel_distance(phi, matmul(psi, dense), false);
    case AftVariant::linear: return mse_loss(map->forward(psi), phi);
  }
  fail("aft: unhandled variant");
}

Tensor AftLoss::compute(const StepInputs& in) {
  std::vector<Tensor> parts;
  for (const auto& t : teacher_names_) parts.push_back(in.teacher_tap(t, "pooled"));
  Tensor psi = parts.size() == 1 ? parts[0] : concat(parts, 1);
  return value(in.student_tap("pooled"), psi);
}

nn::NamedTensors AftLoss::parameters() const {
  switch (options_.variant) {
    case AftVariant::kernel:
    case AftVariant::rbf:
      if (options_.learn_rho) return {{"s", s}};
      return {};
    case AftVariant::dense: return {{"dense", dense}};
    case AftVariant::linear: return map->named_parameters();
  }
  return {};
}

std::vector<LossParamGroup> AftLoss::param_groups() const {
  auto p = parameters();
  if (p.empty()) return {};
  return {LossParamGroup{std::move(p), options_.rho_lr, 0.0,
                         options_.rho_adam ? GroupRule::adamw : GroupRule::optimizer}};
}

std::map<std::string, Tensor> AftLoss::rho_stats() const {
  if (!s.defined() || !options_.learn_rho) return {};
  NoGradGuard no_grad;
  const Tensor r = rho().detach().to(s.dtype() == DType::f64 ? DType::f64 : DType::f32);
  const Tensor m = mean(r);
  const Tensor spread = clamp(sub(mean(mul(r, r)), mul(m, m)), 0.0, std::numeric_limits<double>::infinity());
  return {{"rho_mean", m}, {"rho_min", neg(max(neg(r)))}, {"rho_max", max(r)}, {"rho_std", sqrt(spread)}};
}

std::map<std::string, double> AftLoss::epoch_stats() const {
  const std::map<std::string, Tensor> stats = rho_stats();
  if (stats.empty()) return {};
  std::vector<Tensor> values;
  for (const auto& [name, v] : stats) values.push_back(v.reshape({1}));
  const std::vector<double> host = concat(values, 0).to_vector();  // one host read
  std::map<std::string, double> out;
  size_t i = 0;
  for (const auto& [name, v] : stats) out[name] = host[i++];
  return out;
}

std::map<std::string, Tensor> AftLoss::step_stats(const StepInputs& in) const {
  (void)in;
  std::map<std::string, Tensor> stats = rho_stats();
  stats.erase("rho_std");
  return stats;
}

std::map<std::string, Tensor> AftLoss::pictures(const StepInputs& in) const {
  (void)in;
  if (!s.defined() || !options_.learn_rho) return {};
  NoGradGuard no_grad;
  return {{"rho", rho().detach()}};
}

void register_aft_loss() {
  register_loss(
      "aft",
      {ParamSpec("teachers", ValueKind::models, kRequired, "pretrained models whose 'pooled' features are concatenated"),
       ParamSpec("variant", ValueKind::string, "kernel", "kernel | dense (psi S) | rbf (exp(-d^2)) | linear (U psi ~ phi)")
           .one_of({"kernel", "dense", "rbf", "linear"}),
       ParamSpec("learn_rho", ValueKind::boolean, true, "learn rho = sigmoid(s); false keeps rho = 0.5"),
       ParamSpec("rho_lr", ValueKind::number, kAftDefaultRhoLr,
                 "lr of the learned prior (s, S or U), own group, no weight decay")
           .positive(),
       ParamSpec("rho_optimizer", ValueKind::string, "adam",
                 "the prior's update rule: adam (the authors' Adam) | stage (the stage's optimizer)")
           .one_of({"adam", "stage"})},
      "Adaptive Feature Transfer (Qiu et al. 2024): sqrt(mean((K_s - K_t)^2) + 1e-8) of batch cosine kernels; "
      "weight = beta (10)",
      [](const BuildContext& c) {
        return with_recipe_line(c, [&] {
          const auto& names = c.args->strings("teachers");
          RETORT_CHECK(!names.empty(), "aft: `teachers` must name at least one model");
          int64_t d_t = 0;
          for (const auto& n : names) d_t += pooled_dim(stage_teacher(c, n), c.input_shape, "teacher '" + n + "'");
          const int64_t d_s = pooled_dim(stage_student(c), c.input_shape, "the student");
          AftOptions o;
          o.variant = parse_aft_variant(c.args->string("variant"));
          o.learn_rho = c.args->boolean("learn_rho");
          o.rho_lr = c.args->number("rho_lr");
          o.rho_adam = c.args->string("rho_optimizer") == "adam";
          return std::make_unique<AftLoss>(names, d_s, d_t, o, c.seed, c.device, student_dtype(c));
        });
      },
      kAftDefaultBeta);
}

}  // namespace retort::transfer
