// SyncBN: BatchNorm over the whole global batch when its slices live on several ranks. Each
// rank sums its slice per channel (sum x, sum x^2, in f64), the sums are all-reduced, and every
// rank normalises with the global mean and biased variance; the running statistics take the
// global values (unbiased with the global count), so they are identical on every rank.
// Backward all-reduces sum(dy) and sum(dy * xhat) per channel:
//   dx = w * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M),  M = the global count,
// while dw = sum(dy * xhat) and db = sum(dy) stay this rank's own (the gradient all-reduce adds
// them up with every other parameter's). Reference semantics: batch_norm2d on the
// concatenated global batch.
#pragma once
#include "engine/dist/communicator.h"
#include "engine/tensor.h"

namespace retort::dist {

// global_rows: the rows (images) of the global batch, when the caller knows them (the trainer
// does: the loader built the whole batch before keeping this rank's slice); the global count is
// then global_rows * H * W on the host. 0: the count is all-reduced with the sums and read back,
// one device-to-host synchronisation per call.
Tensor sync_batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, double momentum, double eps, Communicator& comm,
                         int64_t global_rows = 0);

}  // namespace retort::dist
