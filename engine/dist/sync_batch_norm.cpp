// SyncBN's forward and backward over a communicator (see engine/dist/sync_batch_norm.h).
#include "engine/dist/sync_batch_norm.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/profiler.h"

namespace retort::dist {
namespace {

// The dims a per-channel statistic sums over: all but dim 1.
std::vector<int64_t> non_channel_dims(const Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// A per-channel [C] tensor shaped to broadcast against x ([1, C, 1, 1]).
Tensor per_channel(const Tensor& v, const Tensor& x) {
  Shape s(size_t(x.dim()), 1);
  s[1] = x.size(1);
  return v.reshape(s);
}

// Global per-channel mean and biased variance (f64 sums), and the global count.
struct GlobalStats {
  Tensor mean, var;  // [C] in f64
  double count = 0;
};

GlobalStats global_stats(const Tensor& x, Communicator& comm, int64_t global_rows) {
  NoGradGuard ng;
  const auto dims = non_channel_dims(x);
  Tensor x64 = x.detach().to(DType::f64);
  const int64_t C = x.size(1);
  Tensor sums = concat({sum(x64, dims), sum(mul(x64, x64), dims),
                        Tensor::full({1}, double(x.numel() / C), DType::f64, x.device())},
                       0).contiguous();
  comm.allreduce_sum(sums);
  GlobalStats g;
  g.count = global_rows > 0 ? double(global_rows * (x.numel() / (x.size(0) * C)))  // no read
                            : sums.slice(0, 2 * C, 2 * C + 1).item();
  g.mean = mul(sums.slice(0, 0, C), 1.0 / g.count);
  g.var = sub(mul(sums.slice(0, C, 2 * C), 1.0 / g.count), mul(g.mean, g.mean));
  return g;
}

}  // namespace

Tensor sync_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, double momentum, double eps, Communicator& comm,
                         int64_t global_rows) {
  RETORT_PROFILE_OP("sync_batch_norm2d", x, weight, bias, running_mean, running_var);
  RETORT_CHECK(x.defined() && x.dim() >= 2 && x.dim() <= 4 && x.numel() > 0,
               "sync_batch_norm2d: input must be a non-empty [N, C, H, W] (or [N, C], [N, C, L]), got {}",
               x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  const DType stat = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const GlobalStats g = global_stats(x, comm, global_rows);
  RETORT_CHECK(g.count > 1, "sync_batch_norm2d: batch statistics need more than one value per channel, got {} in "
               "the global batch", g.count);
  Tensor mean = g.mean.to(stat), var = g.var.to(stat);
  Tensor wd = weight.defined() ? weight.detach() : Tensor(), bd = bias.defined() ? bias.detach() : Tensor();
  Tensor y;
  {
    NoGradGuard ng;  // normalising with given statistics is batch_norm2d's eval path
    y = batch_norm2d(x.detach(), wd, bd, mean, var, false, 0.0, eps);
  }
  if (running_mean.defined()) update_batch_norm_running_stats(running_mean, running_var, mean, var, momentum, g.count);
  if (!needs_grad({&x, &weight, &bias})) return y;
  const Tensor xd = x.detach();
  const double M = g.count;
  Communicator* group = &comm;
  record(y, "sync_batch_norm2d", {x, weight, bias}, [=](const Tensor& grad) {
    const auto dims = non_channel_dims(xd);
    Tensor invstd = pow(add(var, eps), -0.5);
    Tensor xhat = mul(sub(xd, per_channel(mean.to(xd.dtype()), xd)), per_channel(invstd.to(xd.dtype()), xd));
    Tensor gs = grad.to(stat);
    Tensor local_db = sum(gs, dims), local_dw = sum(mul(gs, xhat.to(stat)), dims);
    // Every rank runs this collective for every SyncBN layer, in the same (graph) order.
    Tensor both = concat({local_db, local_dw}, 0).contiguous();
    group->allreduce_sum(both);
    const int64_t C = xd.size(1);
    Tensor mean_dy = mul(both.slice(0, 0, C), 1.0 / M), mean_dy_xhat = mul(both.slice(0, C, 2 * C), 1.0 / M);
    Tensor scale = wd.defined() ? mul(wd.to(stat), invstd) : invstd;
    Tensor centred = sub(sub(gs, per_channel(mean_dy, xd)), mul(xhat.to(stat), per_channel(mean_dy_xhat, xd)));
    Tensor dx = mul(centred, per_channel(scale, xd)).to(xd.dtype());
    Tensor dw = wd.defined() ? local_dw.to(wd.dtype()) : Tensor();
    Tensor db = bd.defined() ? local_db.to(bd.dtype()) : Tensor();
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

}  // namespace retort::dist
