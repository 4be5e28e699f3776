// OFD: the teacher BNs' margins, the conv + BN connectors and the partial L2 of pre-ReLU maps (see transfer/ofd.h).
#include "transfer/ofd.h"
#include <cmath>
#include <numbers>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

// Holds the connectors under "connectors.<k>", as MD's ConnectorConvBN.
class OfdRoot : public nn::Module {
 public:
  OfdRoot() { connectors = register_module("connectors", std::make_shared<nn::Sequential>()); }
  std::string type_name() const override { return "ConnectorConvBN"; }
  std::shared_ptr<nn::Sequential> connectors;
};

}  // namespace

double ofd_channel_margin(double gamma, double beta) {
  const double sigma = std::abs(gamma);
  // MD and the authors divide by sigma; at sigma = 0 (a constant channel) take the limit.
  if (sigma == 0.0) return std::min(beta, 0.0);
  const double z = beta / sigma;
  const double negative_mass = 0.5 * std::erfc(z / std::numbers::sqrt2);  // Phi(-z), scipy's norm.cdf
  if (negative_mass > kOfdMinNegativeMass)
    return -sigma * std::exp(-z * z / 2) / std::sqrt(2 * std::numbers::pi) / negative_mass + beta;
  return -3 * sigma;
}

std::vector<double> ofd_margins(const nn::BatchNorm2d& bn) {
  const std::vector<double> gamma = bn.weight.to_vector(), beta = bn.bias.to_vector();
  std::vector<double> m(gamma.size());
  for (size_t c = 0; c < m.size(); ++c) m[c] = ofd_channel_margin(gamma[c], beta[c]);
  return m;
}

Tensor ofd_elementwise(const Tensor& s, const Tensor& teacher, const Tensor& margin) {
  RETORT_CHECK(s.shape() == teacher.shape(), "ofd: connected student map {} and teacher map {} differ in shape",
               s.str(), teacher.str());
  const Tensor target = maximum(teacher.detach(), margin.detach().to(s.dtype()));
  const Tensor d = sub(s, target);
  // (s > T or T > 0) ? d^2 : 0 with one mask: where T <= 0 only s > T counts, and s > T is d > 0
  // exactly (IEEE subtraction of finite values keeps the sign), so relu(d)^2 is that term, with
  // the same value and gradient (2d where d > 0, else 0).
  const Tensor r = relu(d);
  return where(gt(target, 0.0), mul(d, d), mul(r, r));
}

Tensor ofd_loss(const std::vector<Tensor>& s, const std::vector<Tensor>& t, const std::vector<Tensor>& margins) {
  RETORT_CHECK(!s.empty() && s.size() == t.size() && s.size() == margins.size(),
               "ofd: {} student maps, {} teacher maps and {} margins", s.size(), t.size(), margins.size());
  const int64_t n = int64_t(s.size()), batch = s[0].size(0);
  Tensor total;
  for (int64_t l = 0; l < n; ++l) {
    const auto k = size_t(l);
    RETORT_CHECK(s[k].dim() == 4 && s[k].size(0) == batch,
                 "ofd: stage {} map {} is no [B, C, H, W] map of stage 1's batch size ({})", l + 1, s[k].str(), batch);
    // MD OFD.py:160: / 2^(n - i - 1) for i = 0..n-1
    Tensor term = mul(sum(ofd_elementwise(s[k], t[k], margins[k])), std::ldexp(1.0, int(l + 1 - n)));
    total = total.defined() ? add(total, term) : term;
  }
  return mul(total, 1.0 / double(batch));  // MD OFD.py:19 .mean(dim=0).sum()
}

OfdLoss::OfdLoss(std::string teacher, const std::vector<models::TapInfo>& s, const std::vector<models::TapInfo>& t,
                 std::vector<std::shared_ptr<nn::BatchNorm2d>> teacher_bns, int64_t kernel_size, Device device,
                 DType dtype, uint64_t seed)
    : taps_(std::move(teacher), "ofd", /*to_map=*/false), teacher_bns_(std::move(teacher_bns)) {
  RETORT_CHECK(!s.empty() && s.size() == t.size() && t.size() == teacher_bns_.size(),
               "ofd: {} student taps, {} teacher taps and {} teacher BNs", s.size(), t.size(), teacher_bns_.size());
  RETORT_CHECK(kernel_size >= 1, "ofd: connector kernel size {} must be >= 1", kernel_size);
  Generator gen(seed ^ 0x0fdull);
  auto root = std::make_shared<OfdRoot>();
  for (size_t k = 0; k < s.size(); ++k) {
    for (const auto* tap : {&s[k], &t[k]}) {
      const bool student = tap == &s[k];
      const TapKind kind = tap_kind(*tap, student ? "student" : "teacher");
      RETORT_CHECK(kind == TapKind::map,
                   "ofd: {} tap '{}' is {} {}, not a [B, C, H, W] map: OFD distils pre-ReLU convolutional maps "
                   "(ResNet/WRN \"stage<i>.preact\") and takes its margin from the BatchNorm before the teacher's "
                   "ReLU; a ViT has neither, so OFD cannot use a ViT on either side",
                   student ? "student" : "teacher", tap->name,
                   kind == TapKind::tokens ? "a token sequence" : "a vector", shape_str(tap->shape));
    }
    const Shape &ss = s[k].shape, &ts = t[k].shape;
    RETORT_CHECK(teacher_bns_[k] != nullptr, "ofd: teacher tap '{}' has no BatchNorm before its ReLU", t[k].name);
    RETORT_CHECK(teacher_bns_[k]->channels == ts[1],
                 "ofd: the BatchNorm before teacher tap '{}' {} has {} channels, the map {}", t[k].name,
                 shape_str(ts), teacher_bns_[k]->channels, ts[1]);
    const int64_t pad = (kernel_size - 1) / 2;
    const int64_t oh = models::window_out(ss[2], kernel_size, 1, pad);
    const int64_t ow = models::window_out(ss[3], kernel_size, 1, pad);
    RETORT_CHECK(oh >= 1 && ow >= 1,
                 "ofd: a {}x{} connector (padding {}) leaves nothing of student tap '{}' {}; choose a smaller "
                 "kernel_size",
                 kernel_size, kernel_size, pad, s[k].name, shape_str(ss));
    taps_.add(s[k], t[k]);
    auto connector = std::make_shared<nn::Sequential>();
    {
      nn::SkipInitGuard building;
      connector->push_back(
          std::make_shared<nn::Conv2d>(ss[1], ts[1], nn::Conv2dSpec{kernel_size, 1, pad, 1, 1, false}, gen));
      connector->push_back(std::make_shared<nn::BatchNorm2d>(ts[1]));  // weight 1, bias 0 (MD OFD.py:57-59)
    }
    // MD OFD.py:54-56: N(0, sqrt(2 / (k * k * C_t))) = kaiming_normal(fan_out)
    nn::kaiming_normal_(connector->at<nn::Conv2d>(0)->weight, gen, 0.0, nn::FanMode::fan_out);
    root->connectors->push_back(connector);
  }
  connectors_ = root->connectors;
  root_ = root;
  root_->to(dtype);
  root_->to(device);
}

nn::Sequential& OfdLoss::connector(size_t k) const { return *connectors_->at<nn::Sequential>(k); }

void OfdLoss::update_margins() {
  margins_.clear();
  margin_tensors_.clear();
  for (const auto& bn : teacher_bns_) margins_.push_back(ofd_margins(*bn));
}

const std::vector<double>& OfdLoss::margins(size_t k) {
  if (margins_.empty()) update_margins();
  return margins_.at(k);
}

const std::vector<Tensor>& OfdLoss::margin_tensors(DType dtype, Device device) {
  if (margins_.empty()) update_margins();
  if (margin_tensors_.empty() || margin_tensors_[0].dtype() != dtype || margin_tensors_[0].device() != device) {
    margin_tensors_.clear();
    for (const auto& m : margins_)
      margin_tensors_.push_back(Tensor::from_vector(m, {1, int64_t(m.size()), 1, 1}, dtype).to(device));
  }
  return margin_tensors_;
}

Tensor OfdLoss::compute(const std::vector<Tensor>& student_maps, const std::vector<Tensor>& teacher_maps) {
  RETORT_CHECK(student_maps.size() == num_stages() && teacher_maps.size() == num_stages(),
               "ofd: {} student and {} teacher maps for {} stages", student_maps.size(), teacher_maps.size(),
               num_stages());
  std::vector<Tensor> s, t;
  for (size_t k = 0; k < num_stages(); ++k) {
    s.push_back(connector(k).forward(student_maps[k]));
    NoGradGuard no_grad;
    Tensor tk = teacher_maps[k].detach();
    if (tk.size(2) != s[k].size(2) || tk.size(3) != s[k].size(3))  // MD OFD.py:156-158
      tk = adaptive_avg_pool2d(tk, {s[k].size(2), s[k].size(3)});
    t.push_back(tk);
  }
  return ofd_loss(s, t, margin_tensors(s[0].dtype(), s[0].device()));
}

Tensor OfdLoss::compute(const StepInputs& in) {
  auto x = taps_.gather(in);
  return compute(x.student, x.teacher);
}

std::vector<std::string> ofd_preact_taps(const models::Model& model, const Shape& input) {
  std::vector<std::string> out;
  for (size_t i = 1;; ++i) {
    const std::string name = fmt::format("stage{}.preact", i);
    bool found = false;
    for (const auto& tap : model.tap_info(input)) found = found || tap.name == name;
    if (!found) return out;
    out.push_back(name);
  }
}

std::unique_ptr<OfdLoss> make_ofd_loss(const models::Model& student, const models::Model& teacher,
                                       const std::string& teacher_name, std::vector<std::string> student_taps,
                                       std::vector<std::string> teacher_taps, const Shape& input,
                                       int64_t kernel_size, Device device, DType dtype, uint64_t seed) {
  RETORT_CHECK(!student_taps.empty() || teacher_taps.empty(), "ofd: `teacher_taps` [{}] given without `student_taps`",
               fmt::join(teacher_taps, ", "));
  if (student_taps.empty()) {
    // MD: preact_feats[1:] of either model, the last min(n_s, n_t) of each (_align_list)
    auto s = ofd_preact_taps(student, input), t = ofd_preact_taps(teacher, input);
    for (const auto& [taps, side, model] : {std::tuple{&s, std::string("student"), &student},
                                            std::tuple{&t, "teacher '" + teacher_name + "'", &teacher}})
      RETORT_CHECK(!taps->empty(),
                   "ofd: the {} ({}) has no pre-ReLU stage taps (\"stage<i>.preact\"): OFD distils pre-ReLU maps and "
                   "takes its margin from the BatchNorm before the teacher's ReLU; a ViT has neither (GELU on "
                   "tokens, LayerNorm), so OFD cannot use a ViT on either side",
                   side, model->family());
    const size_t n = std::min(s.size(), t.size());
    student_taps.assign(s.end() - std::ptrdiff_t(n), s.end());
    teacher_taps.assign(t.end() - std::ptrdiff_t(n), t.end());
  }
  if (teacher_taps.empty()) teacher_taps = student_taps;
  RETORT_CHECK(student_taps.size() == teacher_taps.size(),
               "ofd: {} student taps [{}] but {} teacher taps [{}]; stage k pairs student tap k with teacher tap k",
               student_taps.size(), fmt::join(student_taps, ", "), teacher_taps.size(), fmt::join(teacher_taps, ", "));
  auto taps = find_tap_pairs(student, teacher, teacher_name, student_taps, teacher_taps, input, "ofd");
  std::vector<std::shared_ptr<nn::BatchNorm2d>> bns;
  for (const auto& tap : teacher_taps) {
    bns.push_back(teacher.bn_before_relu(tap));
    if (bns.back()) continue;
    std::vector<std::string> with_bn;
    for (const auto& info : teacher.tap_info(input))
      if (teacher.bn_before_relu(info.name)) with_bn.push_back(info.name);
    fail("ofd: teacher '{}' ({}) tap '{}' has no BatchNorm right before a ReLU, which OFD's margin is computed "
         "from; {}",
         teacher_name, teacher.family(), tap,
         with_bn.empty() ? std::string("this model has no such tap (a ViT has none)")
                         : fmt::format("the taps with one: {}", fmt::join(with_bn, ", ")));
  }
  return std::make_unique<OfdLoss>(teacher_name, taps.student, taps.teacher, std::move(bns), kernel_size, device,
                                   dtype, seed);
}

void register_ofd_loss() {
  register_loss(
      "ofd",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose pre-ReLU features are distilled"),
       ParamSpec("student_taps", ValueKind::strings, kOptional,
                 "the student's pre-ReLU maps (default: every stage<i>.preact, the last min(n_s, n_t))"),
       ParamSpec("teacher_taps", ValueKind::strings, kOptional,
                 "the teacher's pre-ReLU maps with a BatchNorm before their ReLU, stage k with student_taps[k] "
                 "(default: the student's names; with neither list, the teacher's last stage<i>.preact taps)"),
       ParamSpec("kernel_size", ValueKind::integer, kOfdDefaultKernel,
                 "the connector conv's kernel (stride 1, padding (k-1)/2)")
           .positive()},
      "OFD (Heo 2019): (1/B) sum_l 2^(l-n) partial L2 between connected student pre-ReLU maps and the teacher's, "
      "raised to margins from the teacher's BNs",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          return make_ofd_loss(student, teacher, c.args->string("teacher"), given_taps(*c.args, "student_taps"),
                               given_taps(*c.args, "teacher_taps"), c.input_shape, c.args->integer("kernel_size"),
                               c.device, student_dtype(c), c.seed);
        });
      },
      kOfdDefaultWeight);
}

}  // namespace retort::transfer
