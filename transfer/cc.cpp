// CC: learned embeddings of both networks' features and their correlations (see transfer/cc.h).
#include "transfer/cc.h"
#include <cmath>
#include <limits>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/adapters.h"

namespace retort::transfer {
namespace {

// Holds the two embeddings under the names "embed_s" and "embed_t".
class CcEmbeddings : public nn::Module {
 public:
  std::string type_name() const override { return "CcEmbeddings"; }
  void add(const std::string& name, std::shared_ptr<nn::Module> m) { register_module(name, std::move(m)); }
};

void check_embeddings(const Tensor& e_s, const Tensor& e_t) {
  RETORT_CHECK(e_s.defined() && e_t.defined() && e_s.dim() == 2 && e_s.shape() == e_t.shape(),
               "cc: student embeddings {} and teacher embeddings {} must both be [B, F] of one shape",
               e_s.defined() ? e_s.str() : "undefined", e_t.defined() ? e_t.str() : "undefined");
  RETORT_CHECK(e_s.size(0) >= 2, "cc: a batch of {} example; the correlations need at least 2", e_s.size(0));
}

int64_t flat_dim(const models::TapInfo& tap) {
  int64_t d = 1;
  for (size_t k = 1; k < tap.shape.size(); ++k) d *= tap.shape[k];
  return d;
}

}  // namespace

CcForm parse_cc_form(const std::string& s) {
  if (s == "repdistiller") return CcForm::repdistiller;
  if (s == "kernel") return CcForm::kernel;
  fail("cc: form must be \"repdistiller\" or \"kernel\", got \"{}\"", s);
}

CcKernel parse_cc_kernel(const std::string& s) {
  if (s == "gaussian") return CcKernel::gaussian;
  if (s == "bilinear") return CcKernel::bilinear;
  fail("cc: kernel must be \"gaussian\" or \"bilinear\", got \"{}\"", s);
}

Tensor cc_adjacent_loss(const Tensor& e_s, const Tensor& e_t) {
  check_embeddings(e_s, e_t);
  const int64_t b = e_s.size(0);
  Tensor delta = abs(sub(e_s, e_t));
  return mean(sum(mul(delta.slice(0, 0, b - 1), delta.slice(0, 1, b)), {1}));
}

Tensor cc_correlation_matrix(const Tensor& e, CcKernel kernel, double gamma, int64_t max_p) {
  RETORT_CHECK(e.defined() && e.dim() == 2, "cc: embeddings must be [B, F], got {}",
               e.defined() ? e.str() : "undefined");
  Tensor g = matmul(e, e.transpose(0, 1));
  if (kernel == CcKernel::bilinear) return g;
  RETORT_CHECK(gamma > 0 && max_p >= 1, "cc: the gaussian kernel needs gamma > 0 and max_p >= 1, got {} and {}", gamma,
               max_p);
  // exp(-2 gamma) * (1 + sum_{p=1}^{max_p} (2 gamma)^p / p! * g^p)
  Tensor power = g, series = add(mul(g, 2 * gamma), 1.0);
  double coef = 2 * gamma;
  for (int64_t p = 2; p <= max_p; ++p) {
    power = mul(power, g);
    coef *= 2 * gamma / double(p);
    series = add(series, mul(power, coef));
  }
  return mul(series, std::exp(-2 * gamma));
}

Tensor cc_kernel_loss(const Tensor& e_s, const Tensor& e_t, CcKernel kernel, double gamma, int64_t max_p) {
  check_embeddings(e_s, e_t);
  const double b = double(e_s.size(0));
  Tensor d = sub(cc_correlation_matrix(e_s, kernel, gamma, max_p), cc_correlation_matrix(e_t, kernel, gamma, max_p));
  const double floor = double(std::numeric_limits<float>::min());
  Tensor frobenius = sqrt(clamp(sum(mul(d, d)), floor, std::numeric_limits<double>::infinity()));
  return mul(frobenius, 1.0 / (b * b));
}

CcLoss::CcLoss(std::string teacher, std::string student_tap, std::string teacher_tap, int64_t student_dim,
               int64_t teacher_dim, const CcOptions& options, Device device, DType dtype, uint64_t seed)
    : teacher_(std::move(teacher)),
      student_tap_(std::move(student_tap)),
      teacher_tap_(std::move(teacher_tap)),
      options_(options) {
  RETORT_CHECK(student_dim > 0 && teacher_dim > 0 && options.feat_dim > 0,
               "cc: sizes must be positive, got student {} teacher {} feat_dim {}", student_dim, teacher_dim,
               options.feat_dim);
  RETORT_CHECK(options.form == CcForm::repdistiller || options.kernel == CcKernel::bilinear ||
                   (options.gamma > 0 && options.max_p >= 1),
               "cc: the gaussian kernel needs gamma > 0 and max_p >= 1, got {} and {}", options.gamma, options.max_p);
  Generator gen(seed ^ 0xCC0Dull);
  embed_s_ = std::make_shared<nn::Linear>(student_dim, options.feat_dim, gen);
  embed_t_ = std::make_shared<nn::Linear>(teacher_dim, options.feat_dim, gen);
  auto set = std::make_shared<CcEmbeddings>();
  set->add("embed_s", embed_s_);
  set->add("embed_t", embed_t_);
  embeddings_ = set;
  embeddings_->to(dtype);
  embeddings_->to(device);
}

std::pair<Tensor, Tensor> CcLoss::embed(const Tensor& student_features, const Tensor& teacher_features) {
  RETORT_CHECK(student_features.defined() && teacher_features.defined() && student_features.dim() >= 2 &&
                   teacher_features.dim() >= 2 && student_features.size(0) == teacher_features.size(0),
               "cc: student features {} and teacher features {} must be [B, ...] with the same B",
               student_features.defined() ? student_features.str() : "undefined",
               teacher_features.defined() ? teacher_features.str() : "undefined");
  Tensor e_s = embed_s_->forward(student_features.flatten(1));
  Tensor e_t = embed_t_->forward(teacher_features.detach().flatten(1));
  if (options_.normalize) {
    e_s = l2_normalize(e_s, 1);
    e_t = l2_normalize(e_t, 1);
  }
  return {e_s, e_t};
}

Tensor CcLoss::compute(const Tensor& student_features, const Tensor& teacher_features) {
  auto [e_s, e_t] = embed(student_features, teacher_features);
  if (options_.form == CcForm::repdistiller) return cc_adjacent_loss(e_s, e_t);
  return cc_kernel_loss(e_s, e_t, options_.kernel, options_.gamma, options_.max_p);
}

Tensor CcLoss::compute(const StepInputs& in) {
  return compute(in.student_tap(student_tap_), in.teacher_tap(teacher_, teacher_tap_));
}

void register_cc_loss() {
  register_loss(
      "cc",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose embedded features correlate"),
       ParamSpec("student_tap", ValueKind::string, "pooled", "the student's tap (flattened to [B, -1])"),
       ParamSpec("teacher_tap", ValueKind::string, "pooled", "the teacher's tap (flattened to [B, -1])"),
       ParamSpec("form", ValueKind::string, "repdistiller",
                 "repdistiller (adjacent-pair products of |e_s - e_t|) | kernel (torchdistill: B x B correlation "
                 "matrices, Frobenius distance / B^2)")
           .one_of({"repdistiller", "kernel"}),
       ParamSpec("feat_dim", ValueKind::integer, int64_t{kCcDefaultFeatDim}, "output size of both linear embeddings")
           .positive(),
       ParamSpec("kernel", ValueKind::string, "gaussian", "form = kernel: gaussian (Taylor series) | bilinear")
           .one_of({"gaussian", "bilinear"}),
       ParamSpec("gamma", ValueKind::number, kCcDefaultGamma, "form = kernel, gaussian: the RBF's gamma").positive(),
       ParamSpec("max_p", ValueKind::integer, int64_t{kCcDefaultMaxP}, "form = kernel, gaussian: Taylor order")
           .at_least(1),
       ParamSpec("normalize", ValueKind::boolean, ParamValue(false),
                 "L2-normalise the embeddings (the references do not)")},
      "CC (Peng 2019): learned linear embeddings D -> 128 of both networks; adjacent-pair correlation of "
      "|e_s - e_t| (RepDistiller) or a kernel correlation-matrix distance (torchdistill)",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const std::string& teacher = c.args->string("teacher");
          const models::Model& teacher_model = stage_teacher(c);
          const models::Model& student = stage_student(c);
          CcOptions o;
          o.form = parse_cc_form(c.args->string("form"));
          o.feat_dim = c.args->integer("feat_dim");
          o.kernel = parse_cc_kernel(c.args->string("kernel"));
          o.gamma = c.args->number("gamma");
          o.max_p = c.args->integer("max_p");
          o.normalize = c.args->boolean("normalize");
          const auto s = find_tap(student, c.args->string("student_tap"), c.input_shape, "cc", "student");
          const auto t = find_tap(teacher_model, c.args->string("teacher_tap"), c.input_shape, "cc",
                                  "teacher '" + teacher + "'");
          RETORT_CHECK(s.shape.size() >= 2 && t.shape.size() >= 2,
                       "cc: student tap '{}' {} and teacher tap '{}' {} must be [B, ...] with at least 2 dims", s.name,
                       shape_str(s.shape), t.name, shape_str(t.shape));
          return std::make_unique<CcLoss>(teacher, s.name, t.name, flat_dim(s), flat_dim(t), o, c.device,
                                          student_dtype(c), c.seed);
        });
      },
      kCcDefaultWeight);
}

}  // namespace retort::transfer
