// The ops retort_bench times (bench/bench_ops.cpp): one case per hand-written kernel family on
// shapes from real training steps, with the fewest bytes each forward must move and the
// arithmetic it must do, so a time becomes achieved GB/s or TFLOP/s; and the two ceilings they
// are held against in the same run (a device copy, a cuBLAS/OpenBLAS GEMM).
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "engine/retort.h"

namespace retort::bench {

struct OpCase {
  std::string name;    // what and at which shape
  std::string family;  // the kernel family (kernels/cuda/<family>.cu), or "ceiling"
  std::vector<Shape> shapes;   // f32 inputs (random in [-1, 1))
  std::function<Tensor(const std::vector<Tensor>&)> forward;
  double bytes = 0;    // fewest bytes a forward moves through memory
  double flops = 0;    // floating-point operations of a forward (0: memory-bound, not counted)
  bool backward = true;  // also time forward + backward
  bool check = true;     // compare the device's output with the CPU's
  bool gpu_only = false;
  // An optional body that replaces forward in the timing (optimizer steps, raw copies).
  std::function<std::function<void()>(Device)> custom;
};

// Full sizes fill an H200 well past launch overhead; small ones (--small) only exercise the
// plumbing (the GPU kit's smoke mode).
std::vector<OpCase> make_op_cases(bool small);

}  // namespace retort::bench
