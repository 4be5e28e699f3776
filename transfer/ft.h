// Factor transfer (FT): Jangho Kim, SeongUk Park, Nojun Kwak, "Paraphrasing Complex Network:
// Network Compression via Factor Transfer", NeurIPS 2018.
//
// Two stages, one loss kind `ft` with a key `phase`:
//
// phase = "paraphraser" (stage 1: only the paraphraser trains; the stage's student is frozen,
// `trainable = "none"`). f_t [B, C, H, W]: the teacher tap (default "stage3", a constant).
//   P = decoder(encoder(f_t))                 L_rec = mean over all elements of (P - f_t)^2
// The paraphraser (RepDistiller models/util.py:7-41, use_bn = False; k = `rate` = 0.5,
// kC = int(C * k)), every layer 3x3, stride 1, padding 1, with a bias, no BatchNorm:
//   encoder: conv C->C, LReLU; conv C->kC, LReLU; conv kC->kC, LReLU         ("encoder.0/3/6")
//   decoder: convT kC->kC, LReLU; convT kC->C, LReLU; convT C->C, LReLU      ("decoder.0/3/6")
//   LReLU(x) = x for x > 0, 0.1 x otherwise. The loss's parameters are "paraphraser.<name>",
//   the names of RepDistiller's Paraphraser state dict (its empty BN placeholders at 1, 4, 7
//   are Identity here), which is how the transfer phase finds them.
// Transposed convolutions: FtConvTranspose2d keeps PyTorch's ConvTranspose2d weight layout
// [in, out, 3, 3] and default init (so torch weights load as they are) and runs the engine's
// conv_transpose2d (stride 1, padding 1).
//
// phase = "transfer" (stage 2, the default): `paraphraser_stage` names the earlier stage whose
// `ft` term trained the paraphraser; its tensors are read through
// BuildContext::earlier_loss_state and loaded by name. The paraphraser is frozen (not in
// parameters(): its tensors are buffers(), saved in checkpoints) and only its encoder runs.
//   F_t = encoder(f_t)                        [B, kC_t, h_t, w_t]   (no gradient)
//   F_s = translator(f_s)                     [B, kC_t, h_s, w_s]
//   translator (models/util.py:44-62, use_bn = True), learned with the student:
//     conv C_s->C_s, BN, LReLU; conv C_s->kC_t, BN, LReLU; conv kC_t->kC_t, BN, LReLU
//     (3x3, padding 1, biases; parameters "translator.encoder.0/1/3/4/6/7.*")
//   the larger factor map is average-pooled to the smaller (FT.py:18-24: adaptive avg pool)
//   factor = "repdistiller" (default, FT.py:26-31 with p1 = 2, p2 = 1):
//     phi(F) = l2-normalise over h*w of ( mean over channels of F^2 )        [B, h*w]
//     L_FT = mean over B*h*w of | phi(F_s) - phi(F_t) |
//   factor = "torchdistill" (torchdistill 1.1.5 FTLoss, p = 1, mid_level.py:467-477; close to the
//   paper's ||F_T/||F_T|| - F_S/||F_S|| ||_1):
//     phi(F) = l2-normalise the whole flattened factor F[b] (kC*h*w values)
//     L_FT = mean over B*kC*h*w of | phi(F_s) - phi(F_t) |
//   (torchdistill divides by the plain norm, retort by max(norm, 1e-12) as F.normalize does.)
// Recipe: total = CE + beta * L_FT, beta = 200 (RepDistiller scripts/run_cifar_distill.sh:23,
// -a 0 -b 200, train_student.py:239-253), the default weight of `ft`. The paraphraser stage
// needs `weight = 1` in the recipe (L_rec is the stage's whole loss).
// Reference settings read: k = 0.5 (util.py:9, 45); paraphraser pre-training 30 epochs
// (train_student.py:47 init_epochs) with SGD lr 0.01 for CIFAR ResNet/WRN students, momentum 0.9,
// weight decay 5e-4, constant lr, teacher in eval mode, nn.MSELoss mean (pretrain.py:22-31,
// 66-71); in stage 2 the paraphraser is in eval mode and not in the optimizer (loops.py:78-79,
// train_student.py:251-253), factors from feat[-2] of both networks, i.e. the last stage's
// post-ReLU map "stage3" (loops.py:177-180).
// Deviations and choices: pooling also handles non-square maps (min of each side); ViT token
// taps ("tokens.<i>") become their patch grid (CLS dropped) on either side; vector taps
// ("pooled", "cls") cannot carry a 3x3-conv factor: the factory throws. torchdistill's sample
// config sums the reconstruction error and uses a BN paraphraser (uses_bn = True); retort
// follows RepDistiller (mean, no BN). torchdistill's FTLoss does not pool; retort pools for both
// factor forms. The reference fixtures compare against RepDistiller's Paraphraser, Translator and
// FactorTransfer (ft_paraphraser, ft_repdistiller) and torchdistill's Paraphraser4FactorTransfer,
// Translator4FactorTransfer and FTLoss (ft_torchdistill).
// The factory reads the earlier stage's state when it exists (shapes are checked at once) and
// again in begin_stage(), when the term's stage starts (the runner builds every term before any
// stage trains, when that state is still missing: nullopt). By then the state must be there.
// Outside a recipe run (no earlier_loss_state) the transfer phase keeps a freshly initialised
// paraphraser of the right shape (unit tests, `retort bench`).
#pragma once
#include <map>
#include <memory>
#include <string>
#include "engine/nn/layers.h"
#include "transfer/adapters.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

constexpr double kFtDefaultWeight = 200.0;
constexpr double kFtDefaultRate = 0.5;
constexpr double kFtLeakySlope = 0.1;
inline constexpr const char* kFtDefaultTap = "stage3";

enum class FtPhase { paraphraser, transfer };
enum class FtFactor { repdistiller, torchdistill };
FtPhase parse_ft_phase(const std::string& s);
FtFactor parse_ft_factor(const std::string& s);

// LeakyReLU with slope 0.1 (the gradient at 0 is the slope, as in PyTorch).
Tensor ft_leaky_relu(const Tensor& x);
// The factor representation phi of a factor map F [B, C, h, w]: [B, h*w] (repdistiller) or
// [B, C*h*w] (torchdistill), each row of unit L2 norm.
Tensor ft_factor(const Tensor& factor_map, FtFactor form);
// L_FT of a student factor map and a teacher factor map (a constant): the larger pooled to the
// smaller, then mean |phi(F_s) - phi(F_t)|.
Tensor ft_factor_loss(const Tensor& student_factor, const Tensor& teacher_factor, FtFactor form);
// L_rec: mean (reconstruction - target)^2, the target a constant.
Tensor ft_reconstruction_loss(const Tensor& reconstruction, const Tensor& target);

class FtLeakyReLU : public nn::Module {
 public:
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override { return "negative_slope=0.1"; }
  Tensor forward(const Tensor& x) override { return ft_leaky_relu(x); }
};

// PyTorch's ConvTranspose2d(in, out, 3, stride=1, padding=1): weight [in, out, 3, 3], bias [out],
// computed as an ordinary convolution with the flipped, transposed kernel (see above).
class FtConvTranspose2d : public nn::Module {
 public:
  FtConvTranspose2d(int64_t in_channels, int64_t out_channels, Generator& gen);
  std::string type_name() const override { return "ConvTranspose2d"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  int64_t in_channels, out_channels;
  Tensor weight, bias;
};

// The paraphraser of a teacher map with `channels` channels and factor rate k.
class FtParaphraser : public nn::Module {
 public:
  FtParaphraser(int64_t channels, double rate, Generator& gen);
  std::string type_name() const override { return "Paraphraser"; }
  Tensor forward(const Tensor& x) override { return decode(encode(x)); }  // the reconstruction
  Tensor encode(const Tensor& x) { return encoder->forward(x); }          // the factor
  Tensor decode(const Tensor& factor) { return decoder->forward(factor); }
  int64_t channels, factor_channels;
  std::shared_ptr<nn::Sequential> encoder, decoder;
};

// The translator of a student map with `in_channels` channels to `factor_channels`.
class FtTranslator : public nn::Module {
 public:
  FtTranslator(int64_t in_channels, int64_t factor_channels, Generator& gen);
  std::string type_name() const override { return "Translator"; }
  Tensor forward(const Tensor& x) override { return encoder->forward(x); }
  std::shared_ptr<nn::Sequential> encoder;
};

struct FtOptions {
  FtPhase phase = FtPhase::transfer;
  FtFactor factor = FtFactor::repdistiller;
  double rate = kFtDefaultRate;
};

class FtLoss : public Loss {
 public:
  // student_tap is read only in the transfer phase. Throws when a tap is a vector or the rate
  // leaves no factor channel.
  FtLoss(std::string teacher, const models::TapInfo& student_tap, const models::TapInfo& teacher_tap,
         const FtOptions& options, Device device, uint64_t seed);
  Tensor compute(const StepInputs& in) override;
  // On raw taps: the phase's loss (the student features are ignored in the paraphraser phase).
  Tensor compute(const Tensor& student_features, const Tensor& teacher_features);
  Tensor reconstruction_loss(const Tensor& teacher_features);
  Tensor transfer_loss(const Tensor& student_features, const Tensor& teacher_features);
  // Loads the paraphraser from an earlier term's state: every "paraphraser.<name>" tensor of this
  // paraphraser must be there with its shape (others are ignored); throws naming what is wrong.
  void load_paraphraser(const std::map<std::string, Tensor>& state, const std::string& from);
  bool paraphraser_loaded() const { return paraphraser_loaded_; }
  // Where the transfer phase's paraphraser comes from: the `ft` term of the earlier stage
  // `stage`, read through `source` again when this term's stage starts (begin_stage), since the
  // term may be built before that stage has run; `where` names the recipe line in errors.
  void set_paraphraser_source(EarlierLossState source, std::string stage, std::string where);
  // Loads the paraphraser from the source (when one is set); an error when the earlier stage
  // left no state.
  void begin_stage() override;

  nn::NamedTensors parameters() const override;  // paraphraser (phase paraphraser) | translator
  nn::NamedTensors buffers() const override;      // transfer: translator BN stats + frozen paraphraser
  void train(bool on) override;
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override;
  std::vector<std::string> teacher_taps() const override { return {teacher_tap_}; }
  const FtOptions& options() const { return options_; }
  FtParaphraser& paraphraser() { return *paraphraser_; }
  FtTranslator* translator() { return translator_.get(); }  // null in the paraphraser phase

 private:
  std::string teacher_, student_tap_, teacher_tap_;
  FtOptions options_;
  std::shared_ptr<nn::Module> student_to_map_, teacher_to_map_;
  std::shared_ptr<FtParaphraser> paraphraser_;
  std::shared_ptr<FtTranslator> translator_;
  bool paraphraser_loaded_ = false;
  EarlierLossState source_;
  std::string source_stage_, where_;
};

// Builds an FtLoss from the models (taps looked up with tap_info for `input`).
std::unique_ptr<FtLoss> make_ft_loss(const models::Model& student, const models::Model& teacher,
                                     const std::string& teacher_name, const std::string& student_tap,
                                     const std::string& teacher_tap, const Shape& input, const FtOptions& options,
                                     Device device, uint64_t seed);

// Registers "ft" (keys: teacher, phase, paraphraser_stage, student_tap, teacher_tap, factor, rate).
void register_ft_loss();

}  // namespace retort::transfer
