// ReviewKD, knowledge review (Chen, Liu, Zhao, Jia, CVPR 2021, "Distilling Knowledge via Knowledge
// Review").
//
// The student's levels are fused from the deepest to the shallowest, so each level the teacher
// supervises sees its own features and everything deeper ("review"). Levels k = 1..n, shallow to
// deep, pair student tap s_k with teacher tap t_k (a vector [B, C] is a [B, C, 1, 1] map):
//   (y_n, r_n) = ABF_n(s_n)                     (the deepest: no fusion)
//   (y_k, r_k) = ABF_k(s_k, r_{k+1})            k = n-1 .. 1
//   ABF_k: u = BN(conv1x1(s_k)); with a residual r: r' = nearest(r, size of s_k),
//          a = sigmoid(conv1x1(concat(u, r'))) (2 channels), u = u * a_0 + r' * a_1;
//          u = nearest(u, size of t_k); y_k = BN(conv3x3(u)) with t_k's width; r_k = u
//   L = warmup * sum_k HCL(y_k, t_k)
//   HCL(y, t) = [mse(y, t) + sum over l in 4, 2, 1 with l < h of w_l mse(pool_l(y), pool_l(t))]
//               / (1 + sum w_l),  w = 1/2, 1/4, 1/8 for the pools actually used (l < h), in order
//   warmup = min(e / warmup_epochs, 1)
// The ABFs (transfer/reviewkd_abf.h: mid channels, nearest resize, HCL details) are learned with
// the student; teacher maps are constants. conv1 maps every level to `mid` channels
// (default min(512, the width of the student's deepest tap)).
//
// Reference: mdistiller a08d46f mdistiller/distillers/ReviewKD.py (the authors' CIFAR code,
// dvlab-research/ReviewKD CIFAR-100/model/reviewkd.py, repackaged), defaults from
// mdistiller/engine/cfg.py:150-159 and configs/cifar100/reviewkd.yaml:
//   REVIEWKD_WEIGHT 1.0 in cfg.py:152, 5.0 in configs/cifar100/reviewkd.yaml:10 (resnet32x4 ->
//     resnet8x4; the authors' CIFAR-100/script/reviewKD.sh also uses 5.0 for wrn-40-2 -> wrn-16-2,
//     8.0 for ShuffleV2, 0.6 and 1.0 for resnet56 -> 20 and 110 -> 32; ImageNet 1.0 / 8.0):
//     retort's default weight is the CIFAR config's 5.0;
//   WARMUP_EPOCHS 20 (cfg.py:153), factor min(epoch / 20, 1) with mdistiller's 1-based epoch
//     (ReviewKD.py:96, engine/trainer.py:78-87): 1/20 in the first epoch, 1 from epoch 20 on;
//   taps: the student's "feats" f1..f3 after ReLU (STU_PREACT False, cfg.py:159) and its pooled
//     feature; the teacher's "preact_feats"[1:] and pooled feature (ReviewKD.py:89-91). Here
//     student "stage1", "stage2", "stage3", "pooled"; teacher "stage1.preact", "stage2.preact",
//     "stage3.preact", "pooled";
//   SHAPES / OUT_SHAPES [1, 8, 16, 32] (cfg.py:154-155): the student's / teacher's map sizes,
//     deepest first; IN_CHANNELS / OUT_CHANNELS: their widths. retort reads all four from the
//     taps' shapes, so nothing is configured per pair (and maps need not be square);
//   MAX_MID_CHANNEL 512 (cfg.py:158) is declared but not read: ReviewKD.py:45 hard-codes
//     mid = min(512, IN_CHANNELS[-1]); retort's `mid_channels` overrides that value.
// Where the other implementations differ:
//   the authors' CIFAR-100/train.py:210,225 counts epochs from 0, so its first epoch has factor 0
//     (warmup 20, --kd-loss-weight 5.0); mdistiller's first epoch has 1/20 (followed here);
//   torchdistill 1.1.5 AttentionBasedFusion (models/wrapper.py:657-697) has no OUT_SHAPES resize
//     (student and teacher sizes must agree) and HierarchicalContextLoss (losses/mid_level.py:
//     1329-1392) is one level of hcl_loss, same weights (checked equal in the fixture generator).
// retort deviations:
//   warmup_granularity = "step" (an addition, shared with DKD: transfer/loss_warmup.h):
//     min(epochs_done / warmup_epochs, 1), epochs_done = epoch + (batch + 1) / steps_per_epoch, for
//     short stages where whole-epoch steps are too coarse; "epoch" (default) is mdistiller's rule,
//     with retort's 0-based epoch + 1.
//   Sizes come from the taps instead of SHAPES / OUT_SHAPES (same values on mdistiller's pairs).
//   ViT token taps [B, 1+h*w, D] may be named explicitly; they are laid out on their h x w grid
//   (CLS dropped, transfer/adapters.h TokensToMap). A ViT has no stage taps, so the defaults fail
//   before training with the recipe line and the model's taps.
// Parameters are named as mdistiller's: "abfs.<j>.conv1.0.weight", "abfs.<j>.conv1.1.weight",
// ..., "abfs.<j>.att_conv.0.bias", where abfs.0 is the DEEPEST level (mdistiller reverses its
// ModuleList, ReviewKD.py:55) and abfs.<n-1> the shallowest.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "transfer/loss_term.h"
#include "transfer/loss_warmup.h"
#include "transfer/reviewkd_abf.h"

namespace retort::transfer {

constexpr double kReviewKdDefaultWeight = 5.0;
constexpr double kReviewKdWarmupEpochs = 20.0;
constexpr int64_t kReviewKdMaxMidChannels = 512;

struct ReviewKdOptions {
  int64_t mid_channels = 0;  // 0: min(512, the width of the student's deepest tap)
  // The ramp (transfer/loss_warmup.h): min((epoch + 1) / W, 1) ("epoch") or min(epochs_done / W, 1)
  // ("step"); factor 1 when W = 0.
  LossWarmup warmup{kReviewKdWarmupEpochs, WarmupGranularity::epoch};
};

class ReviewKdLoss : public Loss {
 public:
  // Taps shallow to deep; each a map, a ViT token tap or a vector (throws naming the tap otherwise).
  ReviewKdLoss(std::string teacher, const std::vector<models::TapInfo>& student_taps,
               const std::vector<models::TapInfo>& teacher_taps, const ReviewKdOptions& options, Device device,
               DType dtype, uint64_t seed);
  // warmup(in.clock) * sum of the levels' HCL.
  Tensor compute(const StepInputs& in) override;
  // The sum of the levels' HCL (no warm-up) for raw tap tensors, shallow to deep.
  Tensor compute(const std::vector<Tensor>& student, const std::vector<Tensor>& teacher);
  // The fused student outputs y_k, shallow to deep, for raw student tap tensors.
  std::vector<Tensor> fuse(const std::vector<Tensor>& student);
  double warmup(const StepClock& clock) const { return options_.warmup.factor(clock); }

  nn::NamedTensors parameters() const override { return root_->named_parameters(); }
  nn::NamedTensors buffers() const override { return root_->named_buffers(); }
  void train(bool on) override { root_->train(on); }
  std::map<std::string, double> epoch_stats() const override { return {{"warmup", last_warmup_}}; }
  bool settled_at(const StepClock& clock) const override { return warmup(clock) >= 1.0; }
  std::vector<std::string> teachers() const override { return {teacher_}; }
  std::vector<std::string> student_taps() const override { return student_names_; }
  std::vector<std::string> teacher_taps() const override { return teacher_names_; }

  size_t levels() const { return levels_.size(); }
  // The ABF of level k (0 = the shallowest tap pair): mdistiller's abfs.<levels() - 1 - k>.
  Abf& abf(size_t k) const;
  int64_t mid_channels() const { return mid_; }
  const ReviewKdOptions& options() const { return options_; }
  void to(DType dtype) { root_->to(dtype); }

 private:
  enum class Form { map, tokens, vector };
  struct Level {
    Form student_form, teacher_form;
    std::shared_ptr<nn::Module> student_to_map, teacher_to_map;  // tokens only
    std::array<int64_t, 2> out_size;                             // the teacher map's H, W
  };
  Tensor as_map(const Tensor& tap, Form form, const std::shared_ptr<nn::Module>& to_map) const;

  std::string teacher_;
  std::vector<std::string> student_names_, teacher_names_;
  std::vector<Level> levels_;
  ReviewKdOptions options_;
  int64_t mid_ = 0;
  std::shared_ptr<nn::Module> root_;  // child "abfs": deepest level first, as mdistiller
  std::shared_ptr<nn::Sequential> abfs_;
  double last_warmup_ = 0.0;
};

// The default taps: student stage1..3 + pooled, teacher stage1..3.preact + pooled.
std::vector<std::string> reviewkd_default_student_taps();
std::vector<std::string> reviewkd_default_teacher_taps();
// Builds the loss from the models. Empty student_taps: the defaults; empty teacher_taps: the
// teacher defaults when student_taps is empty too, else the student's names.
std::unique_ptr<ReviewKdLoss> make_reviewkd_loss(const models::Model& student, const models::Model& teacher,
                                                 const std::string& teacher_name,
                                                 std::vector<std::string> student_taps,
                                                 std::vector<std::string> teacher_taps, const Shape& input,
                                                 const ReviewKdOptions& options, Device device, DType dtype,
                                                 uint64_t seed);

// Registers "reviewkd" (keys: teacher, student_taps, teacher_taps, mid_channels, warmup_epochs,
// warmup_granularity; default weight 5).
void register_reviewkd_loss();

}  // namespace retort::transfer
