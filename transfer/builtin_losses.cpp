// The built-in loss terms: cross-entropy with the labels ("ce") and Hinton KD ("kd").
// Each method of transfer/ adds its registration here.
#include <mutex>
#include "engine/error.h"
#include "engine/ops.h"
#include "transfer/ab.h"
#include "transfer/aft.h"
#include "transfer/align_uniform.h"
#include "transfer/at.h"
#include "transfer/nst.h"
#include "transfer/sp.h"
#include "transfer/cc.h"
#include "transfer/crd.h"
#include "transfer/deit.h"
#include "transfer/dist.h"
#include "transfer/dkd.h"
#include "transfer/pkt.h"
#include "transfer/reviewkd.h"
#include "transfer/rkd.h"
#include "transfer/fitnet.h"
#include "transfer/fsp.h"
#include "transfer/ft.h"
#include "transfer/kd.h"
#include "transfer/kdsvd.h"
#include "transfer/ofd.h"
#include "transfer/loss_term.h"
#include "transfer/vid.h"

namespace retort::transfer {
namespace {

class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(double smoothing) : smoothing_(smoothing) {}
  Tensor compute(const StepInputs& in) override {
    RETORT_CHECK(in.labels.defined(), "loss 'ce' needs labels, but this stage's data is unlabelled");
    return cross_entropy(in.student_tap("logits"), in.labels, smoothing_);
  }
  bool needs_labels() const override { return true; }

 private:
  double smoothing_;
};

}  // namespace

void register_builtin_losses() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_loss("ce", {ParamSpec("label_smoothing", ValueKind::number, 0.0, "uniform mass mixed into the target").within(0, 1)},
                  "cross-entropy with the labels (fused log-softmax, optional label smoothing)",
                  [](const BuildContext& c) {
                    return std::make_unique<CrossEntropyLoss>(c.args->number("label_smoothing"));
                  });
    register_kd_loss();
    register_fitnet_loss();
    register_vid_loss();
    register_ab_loss();
    register_fsp_loss();
    register_at_loss();
    register_sp_loss();
    register_nst_loss();
    register_ft_loss();
    register_aft_loss();
    register_align_uniform_loss();
    register_cc_loss();
    register_pkt_loss();
    register_rkd_loss();
    register_reviewkd_loss();
    register_crd_loss();
    register_kdsvd_loss();
    register_ofd_loss();
    register_dkd_loss();
    register_dist_loss();
    register_deit_loss();
  });
}

}  // namespace retort::transfer
