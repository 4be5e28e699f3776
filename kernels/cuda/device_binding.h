// Which GPU this process computes on. retort drives one GPU per process (data parallelism runs
// one process per GPU), so the first CUDA device named (`--device cuda:N`, or the first
// allocation) binds the process to it, and naming another one later is an error that says so,
// instead of silently computing on the first. Plain C++ (no CUDA headers), so the rule is tested
// on machines without a GPU; kernels/cuda/runtime.cu applies it.
#pragma once
#include "core/check.h"

namespace retort::cuda {

class DeviceBinding {
 public:
  // Binds to `device` when nothing is bound yet (returns true: the caller must make it current);
  // returns false when `device` is already the bound one; throws when another one is.
  bool bind(int device) {
    RETORT_REQUIRE(device >= 0, "cuda:", device, " is not a device index");
    if (bound_ == device) return false;
    RETORT_REQUIRE(bound_ < 0, "cuda:", device, " was asked for, but this process already computes on cuda:", bound_,
                   "; retort drives one GPU per process: start one process per GPU (e.g. mpirun -np N retort run ...)");
    bound_ = device;
    return true;
  }
  int bound() const { return bound_; }  // -1 until bind()

 private:
  int bound_ = -1;
};

}  // namespace retort::cuda
