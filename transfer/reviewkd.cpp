// ReviewKD: per-level ABFs fusing the student's levels deepest first, the hierarchical context loss
// against the teacher's maps, and mdistiller's warm-up (see transfer/reviewkd.h).
#include "transfer/reviewkd.h"
#include <algorithm>
#include <fmt/format.h>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"
#include "transfer/tap_pairs.h"

namespace retort::transfer {
namespace {

// Holds the ABFs under "abfs.<j>", as mdistiller's ReviewKD distiller.
class ReviewKdRoot : public nn::Module {
 public:
  ReviewKdRoot() { abfs = register_module("abfs", std::make_shared<nn::Sequential>()); }
  std::string type_name() const override { return "ReviewKD"; }
  std::shared_ptr<nn::Sequential> abfs;
};

// The [B, C, H, W] shape a tap becomes (vectors: [B, C, 1, 1]).
Shape level_shape(const models::TapInfo& tap, const std::string& side) {
  if (tap_kind(tap, side) == TapKind::vector) return {tap.shape[0], tap.shape[1], 1, 1};
  return tap_map_shape(tap, side);
}

}  // namespace

ReviewKdLoss::ReviewKdLoss(std::string teacher, const std::vector<models::TapInfo>& s,
                           const std::vector<models::TapInfo>& t, const ReviewKdOptions& options, Device device,
                           DType dtype, uint64_t seed)
    : teacher_(std::move(teacher)), options_(options) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(),
               "reviewkd: {} student taps but {} teacher taps; level k pairs student tap k with teacher tap k",
               s.size(), t.size());
  RETORT_CHECK(options_.mid_channels >= 0, "reviewkd: mid_channels must be positive, got {}", options_.mid_channels);
  RETORT_CHECK(options_.warmup.epochs >= 0, "reviewkd: warmup_epochs must be >= 0, got {}", options_.warmup.epochs);
  const size_t n = s.size();
  std::vector<Shape> ss, ts;
  for (size_t k = 0; k < n; ++k) {
    student_names_.push_back(s[k].name);
    teacher_names_.push_back(t[k].name);
    ss.push_back(level_shape(s[k], "reviewkd: student"));
    ts.push_back(level_shape(t[k], "reviewkd: teacher"));
    Level level;
    auto form = [](const models::TapInfo& tap, const std::string& side) {
      switch (tap_kind(tap, side)) {
        case TapKind::map: return Form::map;
        case TapKind::tokens: return Form::tokens;
        default: return Form::vector;
      }
    };
    level.student_form = form(s[k], "reviewkd: student");
    level.teacher_form = form(t[k], "reviewkd: teacher");
    if (level.student_form == Form::tokens) level.student_to_map = make_to_map(s[k], "reviewkd: student");
    if (level.teacher_form == Form::tokens) level.teacher_to_map = make_to_map(t[k], "reviewkd: teacher");
    level.out_size = {ts.back()[2], ts.back()[3]};
    levels_.push_back(std::move(level));
  }
  // mdistiller ReviewKD.py:45: mid_channel = min(512, in_channels[-1]) (the deepest student level)
  mid_ = options_.mid_channels > 0 ? options_.mid_channels : std::min(kReviewKdMaxMidChannels, ss.back()[1]);
  Generator gen(seed ^ 0x7e71e3ull);
  auto root = std::make_shared<ReviewKdRoot>();
  // mdistiller builds the ABFs shallow to deep (idx < n - 1 fuses), then reverses the list:
  // draw the weights in that order, register them deepest first.
  std::vector<std::shared_ptr<Abf>> built;
  for (size_t k = 0; k < n; ++k) built.push_back(std::make_shared<Abf>(ss[k][1], mid_, ts[k][1], k + 1 < n, gen));
  for (size_t j = 0; j < n; ++j) root->abfs->push_back(built[n - 1 - j]);
  abfs_ = root->abfs;
  root_ = root;
  root_->to(dtype);
  root_->to(device);
}

Abf& ReviewKdLoss::abf(size_t k) const {
  RETORT_CHECK(k < levels(), "reviewkd: level {} of {}", k, levels());
  return *abfs_->at<Abf>(levels() - 1 - k);
}

Tensor ReviewKdLoss::as_map(const Tensor& tap, Form form, const std::shared_ptr<nn::Module>& to_map) const {
  switch (form) {
    case Form::tokens: return to_map->forward(tap);
    case Form::vector:
      RETORT_CHECK(tap.dim() == 2, "reviewkd: expected a vector tap [B, C], got {}", tap.str());
      return tap.reshape({tap.size(0), tap.size(1), 1, 1});
    default: return tap;
  }
}

std::vector<Tensor> ReviewKdLoss::fuse(const std::vector<Tensor>& student) {
  RETORT_CHECK(student.size() == levels(), "reviewkd: {} student tensors for {} levels", student.size(), levels());
  std::vector<Tensor> out(levels());
  Tensor residual;
  for (size_t j = 0; j < levels(); ++j) {  // deepest first (mdistiller ReviewKD.py:80-88)
    const size_t k = levels() - 1 - j;
    const Level& level = levels_[k];
    auto y = abf(k).forward(as_map(student[k], level.student_form, level.student_to_map), residual, level.out_size);
    out[k] = y.out;
    residual = y.residual;
  }
  return out;
}

Tensor ReviewKdLoss::compute(const std::vector<Tensor>& student, const std::vector<Tensor>& teacher) {
  RETORT_CHECK(teacher.size() == levels(), "reviewkd: {} teacher tensors for {} levels", teacher.size(), levels());
  std::vector<Tensor> t;
  {
    NoGradGuard no_grad;
    for (size_t k = 0; k < levels(); ++k)
      t.push_back(as_map(teacher[k].detach(), levels_[k].teacher_form, levels_[k].teacher_to_map));
  }
  return hcl_loss(fuse(student), t);
}

Tensor ReviewKdLoss::compute(const StepInputs& in) {
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < levels(); ++k) {
    s.push_back(in.student_tap(student_names_[k]));
    t.push_back(in.teacher_tap(teacher_, teacher_names_[k]));
  }
  last_warmup_ = warmup(in.clock);
  return mul(compute(s, t), last_warmup_);
}

std::vector<std::string> reviewkd_default_student_taps() { return {"stage1", "stage2", "stage3", "pooled"}; }
std::vector<std::string> reviewkd_default_teacher_taps() {
  return {"stage1.preact", "stage2.preact", "stage3.preact", "pooled"};
}

std::unique_ptr<ReviewKdLoss> make_reviewkd_loss(const models::Model& student, const models::Model& teacher,
                                                 const std::string& teacher_name,
                                                 std::vector<std::string> student_taps,
                                                 std::vector<std::string> teacher_taps, const Shape& input,
                                                 const ReviewKdOptions& options, Device device, DType dtype,
                                                 uint64_t seed) {
  if (teacher_taps.empty())
    teacher_taps = student_taps.empty() ? reviewkd_default_teacher_taps() : student_taps;
  if (student_taps.empty()) student_taps = reviewkd_default_student_taps();
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "reviewkd: {} student taps [{}] but {} teacher taps [{}]; level k pairs student tap k with teacher "
               "tap k",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "reviewkd",
                             VitTapHint::stage_taps);
  return std::make_unique<ReviewKdLoss>(teacher_name, taps.student, taps.teacher, options, device, dtype, seed);
}

void register_reviewkd_loss() {
  std::vector<ParamSpec> keys = {
      ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose maps the fused student levels match"),
      ParamSpec("student_taps", ValueKind::strings, kOptional,
                "the student's levels, shallow to deep (default stage1, stage2, stage3, pooled)"),
      ParamSpec("teacher_taps", ValueKind::strings, kOptional,
                "the teacher's levels, level k with student_taps[k] (default stage1.preact, stage2.preact, "
                "stage3.preact, pooled; the student's names when student_taps is given)"),
      ParamSpec("mid_channels", ValueKind::integer, kOptional,
                "the ABFs' inner width (default min(512, the student's deepest tap width), mdistiller's)")
          .positive()};
  for (auto& spec : warmup_params(kReviewKdWarmupEpochs)) keys.push_back(std::move(spec));
  register_loss(
      "reviewkd", std::move(keys),
      "ReviewKD (Chen 2021): attention-based fusion of the student's levels, deepest first, and the hierarchical "
      "context loss against the teacher's maps; warm-up 20 epochs; weight 5",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          ReviewKdOptions o;
          if (c.args->has("mid_channels")) o.mid_channels = c.args->integer("mid_channels");
          o.warmup = warmup_from_args(*c.args);
          return make_reviewkd_loss(student, teacher, c.args->string("teacher"), given_taps(*c.args, "student_taps"),
                                    given_taps(*c.args, "teacher_taps"), c.input_shape, o, c.device,
                                    student_dtype(c), c.seed);
        });
      },
      kReviewKdDefaultWeight);
}

}  // namespace retort::transfer
