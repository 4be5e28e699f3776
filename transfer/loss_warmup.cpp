// The linear loss warm-up of DKD and ReviewKD (see transfer/loss_warmup.h).
#include "transfer/loss_warmup.h"
#include <algorithm>

namespace retort::transfer {

double LossWarmup::factor(const StepClock& clock) const {
  if (epochs <= 0) return 1.0;
  const double done = granularity == WarmupGranularity::epoch ? double(clock.epoch + 1) : clock.epochs_done();
  return std::min(done / epochs, 1.0);
}

std::vector<ParamSpec> warmup_params(double default_epochs) {
  return {ParamSpec("warmup_epochs", ValueKind::number, default_epochs,
                    "epochs over which the term's weight ramps linearly from 0 to 1 (0: no ramp)")
              .at_least(0),
          ParamSpec("warmup_granularity", ValueKind::string, "epoch",
                    "\"epoch\": factor min(epoch / warmup_epochs, 1), epoch 1-based (mdistiller); \"step\": the "
                    "same over fractional epochs, updated every step")
              .one_of({"epoch", "step"})};
}

LossWarmup warmup_from_args(const LossArgs& args) {
  LossWarmup w;
  w.epochs = args.number("warmup_epochs");
  w.granularity = args.string("warmup_granularity") == "step" ? WarmupGranularity::step : WarmupGranularity::epoch;
  return w;
}

}  // namespace retort::transfer
