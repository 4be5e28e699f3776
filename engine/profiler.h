// The per-op profiler: while a profile is active (`retort profile`), every op, every backward
// node, every step phase and every allocation on the profiling thread is recorded as a timed,
// nested range; profiler::summarise (engine/profile_report.h) turns them into the per-op table
// and the Chrome/Perfetto trace. When no profile is active a range costs one relaxed atomic
// load and a branch.
//
// On CUDA the ranges are also NVTX ranges (so nsys/ncu can be scoped to them), and each range
// ends with a device synchronisation so its time is the GPU's, not the launch's: a profiled
// CUDA step is slower than an unprofiled one, by about one synchronisation per op.
//
// In an op:     RETORT_PROFILE_OP("conv2d", x, weight);  (then, optionally)
//               if (prof.on()) prof.set_flops(2.0 * ...);
// A phase:      profiler::Range phase("student forward", profiler::Kind::phase);
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>
#include "engine/device.h"

namespace retort {
class Tensor;
}

namespace retort::profiler {

enum class Kind : uint8_t { step, phase, op, backward };
const char* kind_name(Kind kind);

struct Event {
  std::string name;        // "conv2d" (an op or a backward node's op), "student forward" (a phase)
  Kind kind = Kind::op;
  int64_t start_ns = 0, end_ns = 0;  // since the profile started
  int32_t depth = 0;       // nesting: 0 for steps, then phases, then ops and what they call
  int32_t parent = -1;     // index of the enclosing event, -1 at the top
  bool in_backward = false;  // inside a backward pass (an op called by a backward node)
  std::string shapes;      // input shapes, "[128, 16, 28, 28] [32, 16, 3, 3]"
  double flops = 0;        // floating-point operations, where the op defines them
  double bytes = 0;        // bytes read and written, for memory-bound ops
  int64_t allocations = 0, allocated_bytes = 0;  // tensors allocated inside it (children included)
  int64_t duration_ns() const { return end_ns - start_ns; }
};

struct Options {
  Device device = Device::cpu();  // CUDA: ranges synchronise the device and push NVTX ranges
};

namespace detail {
extern std::atomic<bool> g_active;
}
inline bool active() noexcept { return detail::g_active.load(std::memory_order_relaxed); }

// Starts recording on the calling thread (the one that runs the steps); a profile already
// running is an error. stop() ends it and returns the events in start order.
void start(const Options& options = {});
std::vector<Event> stop();

// Counts one allocation of `bytes` (engine/storage.cpp calls it); a no-op when not active.
void note_allocation(size_t bytes);

// A timed range; records nothing unless a profile is active on this thread.
class Range {
 public:
  Range(const char* name, Kind kind) {
    if (active()) begin(name, kind);
  }
  Range(const std::string& name, Kind kind) {
    if (active()) begin(name.c_str(), kind);
  }
  ~Range() {
    if (index_ >= 0) end();
  }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

  bool on() const { return index_ >= 0; }
  void set_shapes(std::initializer_list<const Tensor*> inputs);
  void set_flops(double flops);
  void set_bytes(double bytes);

 protected:
  void add_bytes(double bytes);

 private:
  void begin(const char* name, Kind kind);
  void end();
  int64_t index_ = -1;
};

// An op's range with its inputs' shapes and, for memory-bound ops, the bytes of its inputs
// (the op adds its output's with add_output_bytes).
class OpRange : public Range {
 public:
  template <typename... T>
  OpRange(const char* name, const T&... inputs) : Range(name, Kind::op) {
    if (on()) describe({&inputs...});
  }
  void add_output_bytes(const Tensor& out);

 private:
  void describe(std::initializer_list<const Tensor*> inputs);
};

}  // namespace retort::profiler

#define RETORT_PROFILE_OP(name, ...) ::retort::profiler::OpRange prof(name __VA_OPT__(, ) __VA_ARGS__)
