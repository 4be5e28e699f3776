// VID: per stage a 3-layer 1x1-conv regressor predicts the teacher map's mean, a learned per-channel
// softplus variance its spread; the loss is the Gaussian negative log-likelihood, summed over stages.
#include "transfer/vid.h"
#include <cmath>
#include <limits>
#include "engine/error.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

// One stage: RD's VIDLoss module (regressor "regressor.{0,2,4}" and "log_scale").
class VidStage : public nn::Module {
 public:
  VidStage(int64_t in_channels, int64_t out_channels, const VidOptions& o, Generator& gen) {
    regressor = register_module("regressor", std::make_shared<nn::Sequential>());
    const nn::Conv2dSpec one{.kernel = 1, .stride = 1, .padding = 0, .bias = false};
    convs.push_back(regressor->push_back(std::make_shared<nn::Conv2d>(in_channels, out_channels, one, gen)));
    regressor->push_back(std::make_shared<nn::ReLU>());
    convs.push_back(regressor->push_back(std::make_shared<nn::Conv2d>(out_channels, out_channels, one, gen)));
    regressor->push_back(std::make_shared<nn::ReLU>());
    convs.push_back(regressor->push_back(std::make_shared<nn::Conv2d>(out_channels, out_channels, one, gen)));
    log_scale = Tensor::full({out_channels}, vid_initial_log_scale(o.init_pred_var, o.eps));
    if (o.learn_variance)
      register_parameter("log_scale", &log_scale);
    else
      register_buffer("log_scale", &log_scale);
  }
  std::string type_name() const override { return "VIDLoss"; }
  std::shared_ptr<nn::Sequential> regressor;
  std::vector<std::shared_ptr<nn::Conv2d>> convs;
  Tensor log_scale;
};

class VidStages : public nn::Module {
 public:
  std::string type_name() const override { return "VIDStages"; }
  void add(std::shared_ptr<VidStage> s) {
    register_module(std::to_string(stages.size()), s);
    stages.push_back(std::move(s));
  }
  std::vector<std::shared_ptr<VidStage>> stages;
};

VidStage& stage_of(const std::shared_ptr<nn::Module>& m, size_t k) {
  auto& stages = static_cast<VidStages&>(*m).stages;
  RETORT_CHECK(k < stages.size(), "vid: stage {} out of range (the loss has {})", k, stages.size());
  return *stages[k];
}

}  // namespace

double vid_initial_log_scale(double init_pred_var, double eps) {
  RETORT_CHECK(init_pred_var > eps, "vid: init_pred_var ({}) must exceed eps ({})", init_pred_var, eps);
  return std::log(std::expm1(init_pred_var - eps));
}

Tensor vid_variance(const Tensor& log_scale, double eps) {
  // softplus as torch's F.softplus: log(1 + exp(a)) (RD's formula) up to a = 20, a beyond (where
  // the two differ by < 3e-9 relative), so exp cannot overflow.
  constexpr double threshold = 20.0;
  Tensor soft = log(add(exp(clamp(log_scale, -std::numeric_limits<double>::infinity(), threshold)), 1.0));
  return add(where(gt(log_scale, threshold), log_scale, soft), eps);
}

Tensor vid_nll(const Tensor& mean_pred, const Tensor& target, const Tensor& variance) {
  RETORT_CHECK(mean_pred.dim() == 4 && mean_pred.shape() == target.shape(),
               "vid: predicted mean {} and teacher map {} must be equal [B, C, H, W] maps", mean_pred.str(),
               target.str());
  RETORT_CHECK(variance.dim() == 1 && variance.size(0) == mean_pred.size(1),
               "vid: variance {} must have one entry per channel of {}", variance.str(), mean_pred.str());
  Tensor var4 = variance.reshape({1, variance.size(0), 1, 1});
  Tensor d = sub(mean_pred, target.detach());
  return mean(mul(add(div(mul(d, d), var4), log(var4)), 0.5));
}

Tensor vid_regress(const Tensor& x, const std::vector<Tensor>& w) {
  RETORT_CHECK(w.size() == 3, "vid: the regressor has 3 convs, got {} weights", w.size());
  return conv2d(relu(conv2d(relu(conv2d(x, w[0])), w[1])), w[2]);
}

Tensor vid_stage_loss(const Tensor& student, const Tensor& teacher, const std::vector<Tensor>& conv_weights,
                      const Tensor& log_scale, double eps) {
  RETORT_CHECK(student.dim() == 4 && teacher.dim() == 4 && student.size(0) == teacher.size(0),
               "vid: student {} and teacher {} must be [B, C, H, W] maps of one batch", student.str(), teacher.str());
  // pool-to-match (VID.py:39-46): the larger map, student or teacher, down to the smaller
  const int64_t h = std::min(student.size(2), teacher.size(2)), w = std::min(student.size(3), teacher.size(3));
  Tensor s = pool_to(student, h, w, PoolMode::average);
  Tensor t = pool_to(teacher.detach(), h, w, PoolMode::average);
  return vid_nll(vid_regress(s, conv_weights), t, vid_variance(log_scale, eps));
}

VidLoss::VidLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t,
                 const VidOptions& options, Device device, uint64_t seed)
    : taps_(std::move(teacher), "vid"), options_(options) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "vid: {} student taps but {} teacher taps", s.size(), t.size());
  Generator gen(seed ^ 0x51dull);
  auto stages = std::make_shared<VidStages>();
  for (size_t k = 0; k < s.size(); ++k) {
    for (const auto* tap : {&s[k], &t[k]})
      RETORT_CHECK(tap_kind(*tap, "vid") != TapKind::vector,
                   "vid: {} tap '{}' is a vector {}: VID regresses spatial maps (1x1 convs, per-channel "
                   "variance); use a map tap (\"stage<i>\") or ViT tokens (\"tokens.<i>\")",
                   tap == &s[k] ? "student" : "teacher", tap->name, shape_str(tap->shape));
    taps_.add(s[k], t[k]);
    const int64_t cs = tap_map_shape(s[k], "vid: student")[1], ct = tap_map_shape(t[k], "vid: teacher")[1];
    stages->add(std::make_shared<VidStage>(cs, ct, options_, gen));
  }
  stages_ = stages;
  stages_->to(device);
}

std::vector<Tensor*> VidLoss::regressor_weights(size_t k) {
  auto& st = stage_of(stages_, k);
  return {&st.convs[0]->weight, &st.convs[1]->weight, &st.convs[2]->weight};
}
Tensor& VidLoss::log_scale(size_t k) { return stage_of(stages_, k).log_scale; }

Tensor VidLoss::compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps) {
  RETORT_CHECK(student_maps.size() == num_stages() && teacher_maps.size() == num_stages(),
               "vid: {} student and {} teacher maps for {} stages", student_maps.size(), teacher_maps.size(),
               num_stages());
  Tensor total;
  for (size_t k = 0; k < num_stages(); ++k) {
    Tensor t = taps_.teacher_map(k, teacher_maps[k]);
    auto& st = stage_of(stages_, k);
    Tensor term = vid_stage_loss(taps_.student_map(k, student_maps[k]), t,
                                 {st.convs[0]->weight, st.convs[1]->weight, st.convs[2]->weight}, st.log_scale,
                                 options_.eps);
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

Tensor VidLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::vector<std::string> vid_default_taps() { return {"stage1", "stage2", "stage3"}; }

std::unique_ptr<VidLoss> make_vid_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       const VidOptions& options, Device device, uint64_t seed) {
  default_taps(student_taps, teacher_taps, vid_default_taps());
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "vid: {} student taps [{}] but {} teacher taps [{}]; stage k pairs student tap k with teacher tap k",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "vid");
  return std::make_unique<VidLoss>(teacher_name, taps.student, taps.teacher, options, device, seed);
}

void register_vid_loss() {
  register_loss(
      "vid",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose maps the student's predict"),
       ParamSpec("student_taps", ValueKind::strings, kOptional,
                 "the student's maps, one per stage (default stage1, stage2, stage3)"),
       ParamSpec("teacher_taps", ValueKind::strings, kOptional,
                 "the teacher's maps, stage k with student_taps[k] (default: the student's names)"),
       ParamSpec("init_pred_var", ValueKind::number, kVidInitPredVar, "the variance sigma^2 starts at").positive(),
       ParamSpec("eps", ValueKind::number, kVidEps, "added to softplus(alpha): the smallest variance").positive(),
       ParamSpec("learn_variance", ValueKind::boolean, ParamValue(true),
                 "train the per-channel variance (RepDistiller); false keeps it fixed (mdistiller)")},
      "VID (Ahn 2019): sum over stages of mean 0.5*((r(f_s) - f_t)^2/sigma2_c + log sigma2_c), learned 1x1-conv "
      "regressor r and softplus variance",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          VidOptions o;
          o.init_pred_var = c.args->number("init_pred_var");
          o.eps = c.args->number("eps");
          o.learn_variance = c.args->boolean("learn_variance");
          RETORT_CHECK(o.init_pred_var > o.eps, "vid: init_pred_var ({}) must exceed eps ({})", o.init_pred_var,
                       o.eps);
          return make_vid_loss(student, teacher, c.args->string("teacher"), given_taps(*c.args, "student_taps"),
                               given_taps(*c.args, "teacher_taps"), c.input_shape, o, c.device, c.seed);
        });
      },
      kVidDefaultWeight);
}

}  // namespace retort::transfer
