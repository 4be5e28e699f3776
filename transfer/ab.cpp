// AB: per-stage connectors (identity or ConvReg without ReLU) and the margin loss on the signs of pre-ReLU maps.
#include "transfer/ab.h"
#include <cmath>
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

// Holds the connectors under "connectors.<k>", as RD's Connector module.
class AbRoot : public nn::Module {
 public:
  AbRoot() { connectors = register_module("connectors", std::make_shared<nn::Sequential>()); }
  std::string type_name() const override { return "Connector"; }
  std::shared_ptr<nn::Sequential> connectors;
};

}  // namespace

Tensor ab_elementwise(const Tensor& s, const Tensor& teacher, double margin) {
  RETORT_CHECK(s.shape() == teacher.shape(), "ab: connected student map {} and teacher map {} differ in shape",
               s.str(), teacher.str());
  const Tensor t = teacher.detach();
  const Tensor zero = Tensor::zeros({}, s.dtype(), s.device());
  const Tensor sp = add(s, margin), sm = add(s, -margin);
  Tensor off = where(gt(s, -margin), mul(sp, sp), zero);  // teacher off (t <= 0): s should be <= -m
  Tensor on = where(gt(s, margin), zero, mul(sm, sm));     // teacher on (t > 0): s should be > m
  return where(gt(t, 0.0), on, off);
}

Tensor ab_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t, double margin) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "ab: {} student maps but {} teacher maps", s.size(), t.size());
  const int64_t n = int64_t(s.size()), batch = s[0].size(0);
  Tensor total;
  for (int64_t l = 0; l < n; ++l) {
    RETORT_CHECK(s[size_t(l)].dim() >= 1 && s[size_t(l)].size(0) == batch,
                 "ab: stage {} map {} has another batch size than stage 1's ({})", l + 1, s[size_t(l)].str(), batch);
    // RD AB.py:13: w_i = 2^(i - n + 1) for i = 0..n-1
    Tensor term = mul(sum(ab_elementwise(s[size_t(l)], t[size_t(l)], margin)), std::ldexp(1.0, int(l + 1 - n)));
    total = total.defined() ? add(total, term) : term;
  }
  return mul(total, kAbScale / double(batch));
}

AbLoss::AbLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t,
               double margin, Device device, uint64_t seed)
    : taps_(std::move(teacher), "ab", /*to_map=*/false), margin_(margin) {
  RETORT_CHECK(!s.empty() && s.size() == t.size(), "ab: {} student taps but {} teacher taps", s.size(), t.size());
  Generator gen(seed ^ 0xab0ull);
  auto root = std::make_shared<AbRoot>();
  for (size_t k = 0; k < s.size(); ++k) {
    for (const auto* tap : {&s[k], &t[k]})
      RETORT_CHECK(tap_kind(*tap, "ab") == TapKind::map,
                   "ab: {} tap '{}' is {} {}, not a [B, C, H, W] map: AB transfers the signs of pre-ReLU activations "
                   "of convolutional maps (ResNet/WRN \"stage<i>.preact\"); a ViT has no pre-ReLU tap, so AB cannot "
                   "use a ViT on either side",
                   tap == &s[k] ? "student" : "teacher", tap->name,
                   tap_kind(*tap, "ab") == TapKind::tokens ? "a token sequence" : "a vector", shape_str(tap->shape));
    taps_.add(s[k], t[k]);
    const Shape &ss = s[k].shape, &ts = t[k].shape;
    if (ss[1] == ts[1] && ss[2] == ts[2]) {  // RD models/util.py:79: channels and height agree
      root->connectors->push_back(std::make_shared<nn::Identity>());
      continue;
    }
    const std::string why = conv_reg_unsupported(ss, ts);
    RETORT_CHECK(why.empty(),
                 "ab: no connector from student tap '{}' {} to teacher tap '{}' {}: {} (RepDistiller raises "
                 "NotImplemented too, models/util.py:144-145); pick taps whose student map is at least as large as "
                 "the teacher's, or exactly half its size",
                 s[k].name, shape_str(ss), t[k].name, shape_str(ts), why);
    root->connectors->push_back(std::make_shared<ConvReg>(ss, ts, gen, /*relu=*/false));  // RD: use_relu=False
  }
  connectors_ = root->connectors;
  root_ = root;
  root_->to(device);
}

std::shared_ptr<ConvReg> AbLoss::connector(size_t k) const {
  return std::dynamic_pointer_cast<ConvReg>((*connectors_)[k]);
}

Tensor AbLoss::compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps) {
  RETORT_CHECK(student_maps.size() == num_stages() && teacher_maps.size() == num_stages(),
               "ab: {} student and {} teacher maps for {} stages", student_maps.size(), teacher_maps.size(),
               num_stages());
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < num_stages(); ++k) {
    s.push_back((*connectors_)[k]->forward(student_maps[k]));
    t.push_back(teacher_maps[k].detach());
  }
  return ab_loss(s, t, margin_);
}

Tensor AbLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::vector<std::string> ab_default_taps() { return {"stage1.preact", "stage2.preact", "stage3.preact"}; }

std::unique_ptr<AbLoss> make_ab_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, std::vector<std::string> student_taps,
                                     std::vector<std::string> teacher_taps, const Shape& input, double margin,
                                     Device device, uint64_t seed) {
  RETORT_CHECK(!student_taps.empty() || teacher_taps.empty(), "ab: `teacher_taps` [{}] given without `student_taps`",
               fmt::join(teacher_taps, ", "));
  default_taps(student_taps, teacher_taps, ab_default_taps());
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "ab: {} student taps [{}] but {} teacher taps [{}]; stage k pairs student tap k with teacher tap k",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "ab");
  return std::make_unique<AbLoss>(teacher_name, taps.student, taps.teacher, margin, device, seed);
}

void register_ab_loss() {
  register_loss(
      "ab",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose activation boundaries are transferred"),
       ParamSpec("student_taps", ValueKind::strings, kOptional,
                 "the student's pre-ReLU maps (default stage1.preact, stage2.preact, stage3.preact)"),
       ParamSpec("teacher_taps", ValueKind::strings, kOptional,
                 "the teacher's pre-ReLU maps, stage k with student_taps[k] (default: the student's names)"),
       ParamSpec("margin", ValueKind::number, kAbMargin, "the margin m around 0 the student's sign must clear")
           .positive()},
      "AB (Heo 2019): (3/1000)(1/B) sum_l 2^(l-n) sum of the margin loss on the signs of pre-ReLU maps, learned "
      "connectors; an initialisation stage (then CE alone)",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          return make_ab_loss(student, teacher, c.args->string("teacher"), given_taps(*c.args, "student_taps"),
                              given_taps(*c.args, "teacher_taps"), c.input_shape, c.args->number("margin"), c.device,
                              c.seed);
        });
      },
      kAbDefaultWeight);
}

}  // namespace retort::transfer
