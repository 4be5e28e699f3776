// Factor transfer: the paraphraser (an autoencoder on a teacher map, trained in a stage of its
// own), the translator on the student map, and the factor loss between the two codes.
#include "transfer/ft.h"
#include <cmath>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/nn/init.h"
#include "engine/ops.h"

namespace retort::transfer {
namespace {

nn::Conv2dSpec conv3x3() {
  nn::Conv2dSpec s;
  s.kernel = 3;
  s.stride = 1;
  s.padding = 1;
  s.bias = true;
  return s;
}

nn::NamedTensors prefixed(const nn::NamedTensors& in, const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [n, t] : in) out.push_back({prefix + n, t});
  return out;
}

// FT's codes are 3x3 convolutions over a spatial map: a vector tap cannot carry one.
void require_spatial(const models::TapInfo& tap, const std::string& side) {
  RETORT_CHECK(tap_kind(tap, "ft: " + side) != TapKind::vector,
               "ft: the {} tap '{}' is a vector {}; factor transfer's paraphraser and translator are 3x3 "
               "convolutions over a spatial map: pick a map tap (\"stage1\"..\"stage3\") or ViT tokens "
               "(\"tokens.<i>\")",
               side, tap.name, shape_str(tap.shape));
}

}  // namespace

FtPhase parse_ft_phase(const std::string& s) {
  if (s == "paraphraser") return FtPhase::paraphraser;
  if (s == "transfer") return FtPhase::transfer;
  fail("ft: phase must be \"paraphraser\" or \"transfer\", got \"{}\"", s);
}

FtFactor parse_ft_factor(const std::string& s) {
  if (s == "repdistiller") return FtFactor::repdistiller;
  if (s == "torchdistill") return FtFactor::torchdistill;
  fail("ft: factor must be \"repdistiller\" or \"torchdistill\", got \"{}\"", s);
}

Tensor ft_leaky_relu(const Tensor& x) { return where(gt(x, 0.0), x, mul(x, kFtLeakySlope)); }

Tensor ft_factor(const Tensor& f, FtFactor form) {
  RETORT_CHECK(f.dim() == 4, "ft: a factor map must be [B, C, h, w], got {}", f.str());
  const int64_t B = f.size(0);
  Tensor v = form == FtFactor::repdistiller ? mean(mul(f, f), {1}).reshape({B, -1}) : f.reshape({B, -1});
  return l2_normalize(v, 1);
}

Tensor ft_factor_loss(const Tensor& fs, const Tensor& ft, FtFactor form) {
  RETORT_CHECK(fs.dim() == 4 && ft.dim() == 4 && fs.size(0) == ft.size(0),
               "ft: student factor {} and teacher factor {} must be [B, C, h, w] maps of the same batch", fs.str(),
               ft.str());
  RETORT_CHECK(form == FtFactor::repdistiller || fs.size(1) == ft.size(1),
               "ft: the torchdistill factor compares whole factors: student factor {} and teacher factor {} need the "
               "same channel count",
               fs.str(), ft.str());
  const int64_t h = std::min(fs.size(2), ft.size(2)), w = std::min(fs.size(3), ft.size(3));
  Tensor s = pool_to(fs, h, w, PoolMode::average);
  Tensor t = pool_to(ft.detach(), h, w, PoolMode::average);
  return mean(abs(sub(ft_factor(s, form), ft_factor(t, form))));
}

Tensor ft_reconstruction_loss(const Tensor& reconstruction, const Tensor& target) {
  RETORT_CHECK(reconstruction.shape() == target.shape(), "ft: reconstruction {} and its target {} differ in shape",
               reconstruction.str(), target.str());
  return mse_loss(reconstruction, target.detach(), Reduction::mean);
}

FtConvTranspose2d::FtConvTranspose2d(int64_t in, int64_t out, Generator& gen) : in_channels(in), out_channels(out) {
  RETORT_CHECK(in > 0 && out > 0, "ConvTranspose2d({}, {}): channel counts must be positive", in, out);
  weight = Tensor::empty({in, out, 3, 3});
  bias = Tensor::empty({out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  // PyTorch's _ConvNd.reset_parameters: fan_in = weight.size(1) * 9 (= out * 9 for this layout)
  nn::kaiming_uniform_(weight, gen, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(double(nn::fan_in(weight)));
  nn::uniform_(bias, gen, -bound, bound);
}

std::string FtConvTranspose2d::extra_repr() const {
  return fmt::format("{}, {}, kernel_size=3, stride=1, padding=1", in_channels, out_channels);
}

Tensor FtConvTranspose2d::forward(const Tensor& x) {
  RETORT_CHECK(x.dim() == 4 && x.size(1) == in_channels, "ConvTranspose2d({}, {}): input {} is not [N, {}, H, W]",
               in_channels, out_channels, x.str(), in_channels);
  Conv2dOptions o;
  o.padding = {1, 1};
  return conv_transpose2d(x, weight, bias, o);
}

FtParaphraser::FtParaphraser(int64_t c, double rate, Generator& gen)
    : channels(c), factor_channels(int64_t(double(c) * rate)) {
  RETORT_CHECK(factor_channels >= 1,
               "ft: factor rate {} leaves int({} * {}) = {} factor channels for a {}-channel teacher map; raise `rate`",
               rate, c, rate, factor_channels, c);
  const int64_t k = factor_channels;
  encoder = std::make_shared<nn::Sequential>();
  decoder = std::make_shared<nn::Sequential>();
  const std::pair<int64_t, int64_t> enc[] = {{c, c}, {c, k}, {k, k}}, dec[] = {{k, k}, {k, c}, {c, c}};
  for (const auto& [i, o] : enc) {  // RepDistiller's Sequential: conv, (BN placeholder), LeakyReLU
    encoder->push_back(std::make_shared<nn::Conv2d>(i, o, conv3x3(), gen));
    encoder->push_back(std::make_shared<nn::Identity>());
    encoder->push_back(std::make_shared<FtLeakyReLU>());
  }
  for (const auto& [i, o] : dec) {
    decoder->push_back(std::make_shared<FtConvTranspose2d>(i, o, gen));
    decoder->push_back(std::make_shared<nn::Identity>());
    decoder->push_back(std::make_shared<FtLeakyReLU>());
  }
  register_module("encoder", encoder);
  register_module("decoder", decoder);
}

FtTranslator::FtTranslator(int64_t c, int64_t k, Generator& gen) {
  encoder = std::make_shared<nn::Sequential>();
  const std::pair<int64_t, int64_t> layers[] = {{c, c}, {c, k}, {k, k}};
  for (const auto& [i, o] : layers) {
    encoder->push_back(std::make_shared<nn::Conv2d>(i, o, conv3x3(), gen));
    encoder->push_back(std::make_shared<nn::BatchNorm2d>(o));
    encoder->push_back(std::make_shared<FtLeakyReLU>());
  }
  register_module("encoder", encoder);
}

FtLoss::FtLoss(std::string teacher, const models::TapInfo& s, const models::TapInfo& t, const FtOptions& options,
               Device device, uint64_t seed)
    : teacher_(std::move(teacher)), student_tap_(s.name), teacher_tap_(t.name), options_(options) {
  Generator gen(seed ^ 0xf7f7ull);
  require_spatial(t, "teacher");
  teacher_to_map_ = make_to_map(t, "ft: teacher");
  const Shape mt = tap_map_shape(t, "ft: teacher");
  paraphraser_ = std::make_shared<FtParaphraser>(mt[1], options_.rate, gen);
  paraphraser_->to(device);
  if (options_.phase == FtPhase::transfer) {
    require_spatial(s, "student");
    student_to_map_ = make_to_map(s, "ft: student");
    const Shape ms = tap_map_shape(s, "ft: student");
    translator_ = std::make_shared<FtTranslator>(ms[1], paraphraser_->factor_channels, gen);
    translator_->to(device);
    paraphraser_->requires_grad_(false);  // frozen: trained in its own stage
    paraphraser_->eval();
  }
}

Tensor FtLoss::reconstruction_loss(const Tensor& teacher_features) {
  Tensor f = teacher_to_map_->forward(teacher_features.detach());
  return ft_reconstruction_loss(paraphraser_->forward(f), f);
}

Tensor FtLoss::transfer_loss(const Tensor& student_features, const Tensor& teacher_features) {
  RETORT_CHECK(translator_, "ft: transfer_loss called on a phase \"paraphraser\" term");
  Tensor factor_t;
  {
    NoGradGuard no_grad;
    factor_t = paraphraser_->encode(teacher_to_map_->forward(teacher_features.detach()));
  }
  Tensor factor_s = translator_->forward(student_to_map_->forward(student_features));
  return ft_factor_loss(factor_s, factor_t, options_.factor);
}

Tensor FtLoss::compute(const Tensor& student_features, const Tensor& teacher_features) {
  if (options_.phase == FtPhase::paraphraser) return reconstruction_loss(teacher_features);
  return transfer_loss(student_features, teacher_features);
}

Tensor FtLoss::compute(const StepInputs& in) {
  const Tensor& t = in.teacher_tap(teacher_, teacher_tap_);
  if (options_.phase == FtPhase::paraphraser) return reconstruction_loss(t);
  return transfer_loss(in.student_tap(student_tap_), t);
}

void FtLoss::load_paraphraser(const std::map<std::string, Tensor>& state, const std::string& from) {
  std::string held;
  for (const auto& [n, t] : state) held += (held.empty() ? "" : ", ") + n;
  for (auto& [n, p] : paraphraser_->named_parameters()) {
    const std::string key = "paraphraser." + n;
    auto it = state.find(key);
    RETORT_CHECK(it != state.end(),
                 "ft: {} holds no '{}' (it has: {}); `paraphraser_stage` must name the stage whose `ft` term "
                 "with phase \"paraphraser\" trained the paraphraser",
                 from, key, held.empty() ? "nothing" : held);
    RETORT_CHECK(it->second.shape() == p.shape(),
                 "ft: {}'s '{}' has shape {}, but this term's paraphraser (teacher tap '{}', {} channels, {} factor "
                 "channels) needs {}; the paraphraser stage must read the same teacher tap with the same `rate`",
                 from, key, shape_str(it->second.shape()), teacher_tap_, paraphraser_->channels,
                 paraphraser_->factor_channels, shape_str(p.shape()));
  }
  for (auto& [n, p] : paraphraser_->named_parameters()) {
    Tensor dst = p;
    dst.copy_(state.at("paraphraser." + n));
  }
  paraphraser_loaded_ = true;
}

void FtLoss::set_paraphraser_source(EarlierLossState source, std::string stage, std::string where) {
  source_ = std::move(source);
  source_stage_ = std::move(stage);
  where_ = std::move(where);
}

void FtLoss::begin_stage() {
  if (options_.phase != FtPhase::transfer || !source_) return;
  auto state = source_(source_stage_, "ft");
  RETORT_CHECK(state.has_value(),
               "{}: loss 'ft' reads the paraphraser that stage '{}' trained, but that stage left no loss state (it "
               "has not run, or ran without its `ft` term with phase \"paraphraser\")",
               where_, source_stage_);
  try {
    load_paraphraser(*state, "stage '" + source_stage_ + "'");
  } catch (const Error& e) {
    fail("{}: {}", where_, e.what());
  }
}

nn::NamedTensors FtLoss::parameters() const {
  if (options_.phase == FtPhase::paraphraser) return prefixed(paraphraser_->named_parameters(), "paraphraser.");
  return prefixed(translator_->named_parameters(), "translator.");
}

nn::NamedTensors FtLoss::buffers() const {
  if (options_.phase == FtPhase::paraphraser) return prefixed(paraphraser_->named_buffers(), "paraphraser.");
  nn::NamedTensors out = prefixed(translator_->named_buffers(), "translator.");
  for (auto& nt : prefixed(paraphraser_->named_parameters(), "paraphraser.")) out.push_back(nt);
  return out;
}

void FtLoss::train(bool on) {
  if (options_.phase == FtPhase::paraphraser)
    paraphraser_->train(on);
  else
    translator_->train(on);  // the frozen paraphraser stays in eval mode
}

std::vector<std::string> FtLoss::student_taps() const {
  if (options_.phase == FtPhase::paraphraser) return {};
  return {student_tap_};
}

std::unique_ptr<FtLoss> make_ft_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::string& student_tap,
                                     const std::string& teacher_tap, const Shape& input, const FtOptions& options,
                                     Device device, uint64_t seed) {
  auto t = find_tap(teacher, teacher_tap, input, "ft", "teacher '" + teacher_name + "'");
  auto s = options.phase == FtPhase::transfer ? find_tap(student, student_tap, input, "ft", "student") : t;
  return std::make_unique<FtLoss>(teacher_name, s, t, options, device, seed);
}

void register_ft_loss() {
  register_loss(
      "ft",
      {ParamSpec("teacher", ValueKind::model, kRequired, "the teacher whose map the paraphraser encodes"),
       ParamSpec("phase", ValueKind::string, "transfer",
                 "paraphraser (train the paraphraser: reconstruction MSE; student frozen) | transfer (factor loss)")
           .one_of({"paraphraser", "transfer"}),
       ParamSpec("paraphraser_stage", ValueKind::string, kOptional,
                 "phase transfer: the earlier stage whose ft term trained the paraphraser (required there)"),
       ParamSpec("student_tap", ValueKind::string, kFtDefaultTap, "the student's map fed to the translator"),
       ParamSpec("teacher_tap", ValueKind::string, kFtDefaultTap, "the teacher's map fed to the paraphraser"),
       ParamSpec("factor", ValueKind::string, "repdistiller",
                 "repdistiller (normalised channel mean of F^2, L1) | torchdistill (normalised whole factor, L1)")
           .one_of({"repdistiller", "torchdistill"}),
       ParamSpec("rate", ValueKind::number, kFtDefaultRate, "factor rate k: the factor has int(k * C_t) channels")
           .within(0, 1)},
      "Factor transfer (Kim 2018): paraphraser autoencoder on the teacher map (phase paraphraser), then "
      "mean |phi(translator(f_s)) - phi(encoder(f_t))| (phase transfer); weight 200",
      [](const BuildContext& c) -> std::unique_ptr<Loss> {
        return with_recipe_line(c, [&] {
          const models::Model& teacher = stage_teacher(c);
          const models::Model& student = stage_student(c);
          FtOptions o;
          o.phase = parse_ft_phase(c.args->string("phase"));
          o.factor = parse_ft_factor(c.args->string("factor"));
          o.rate = c.args->number("rate");
          const bool has_stage = c.args->has("paraphraser_stage");
          RETORT_CHECK(o.phase == FtPhase::transfer || !has_stage,
                       "ft: `paraphraser_stage` is read only with phase \"transfer\"; phase \"paraphraser\" trains "
                       "the paraphraser itself");
          RETORT_CHECK(o.phase == FtPhase::paraphraser || has_stage,
                       "ft: phase \"transfer\" needs `paraphraser_stage`: the earlier stage whose `ft` term with "
                       "phase \"paraphraser\" trained the paraphraser");
          auto loss = make_ft_loss(student, teacher, c.args->string("teacher"), c.args->string("student_tap"),
                                   c.args->string("teacher_tap"), c.input_shape, o, c.device, c.seed);
          if (o.phase == FtPhase::transfer && c.earlier_loss_state) {
            const std::string& stage = c.args->string("paraphraser_stage");
            if (auto state = c.earlier_loss_state(stage, "ft"))  // throws when `stage` is not earlier
              loss->load_paraphraser(*state, "stage '" + stage + "'");
            loss->set_paraphraser_source(c.earlier_loss_state, stage, c.args->where);
          }
          return loss;
        });
      },
      kFtDefaultWeight);
}

}  // namespace retort::transfer
