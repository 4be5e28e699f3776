// Recording of the per-op profiler's ranges (see engine/profiler.h).
#include "engine/profiler.h"
#include <chrono>
#include <thread>
#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/cuda/cuda_api.h"

namespace retort::profiler {
namespace detail {
std::atomic<bool> g_active{false};
}

namespace {
using Clock = std::chrono::steady_clock;

struct Recorder {
  std::thread::id thread;
  Clock::time_point origin;
  Options options;
  std::vector<Event> events;
  std::vector<int64_t> open;  // indices of the ranges not yet ended, innermost last
  int backward_depth = 0;     // > 0 inside a backward node
};
Recorder g_recorder;

bool on_profiling_thread() { return std::this_thread::get_id() == g_recorder.thread; }
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - g_recorder.origin).count();
}
}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::step: return "step";
    case Kind::phase: return "phase";
    case Kind::op: return "op";
    case Kind::backward: return "backward";
  }
  return "?";
}

void start(const Options& options) {
  RETORT_CHECK(!active(), "profiler: a profile is already running");
  g_recorder = Recorder{};
  g_recorder.thread = std::this_thread::get_id();
  g_recorder.options = options;
  g_recorder.events.reserve(1 << 16);
  g_recorder.origin = Clock::now();
  detail::g_active.store(true, std::memory_order_relaxed);
}

std::vector<Event> stop() {
  RETORT_CHECK(active(), "profiler: no profile is running");
  RETORT_CHECK(on_profiling_thread(), "profiler: stop() from another thread than start()");
  detail::g_active.store(false, std::memory_order_relaxed);
  RETORT_CHECK(g_recorder.open.empty(), "profiler: stopped inside {} open ranges (innermost '{}')",
               g_recorder.open.size(), g_recorder.events[size_t(g_recorder.open.back())].name);
  return std::move(g_recorder.events);
}

void note_allocation(size_t bytes) {
  if (!active() || !on_profiling_thread()) return;
  for (int64_t i : g_recorder.open) {
    Event& e = g_recorder.events[size_t(i)];
    ++e.allocations;
    e.allocated_bytes += int64_t(bytes);
  }
}

void Range::begin(const char* name, Kind kind) {
  if (!on_profiling_thread()) return;
  Recorder& r = g_recorder;
  if (r.options.device.is_cuda()) cuda::nvtx_push(name);
  Event e;
  e.name = name;
  e.kind = kind;
  e.depth = int32_t(r.open.size());
  e.parent = r.open.empty() ? -1 : int32_t(r.open.back());
  e.in_backward = r.backward_depth > 0;
  if (kind == Kind::backward) ++r.backward_depth;
  index_ = int64_t(r.events.size());
  r.open.push_back(index_);
  e.start_ns = now_ns();
  r.events.push_back(std::move(e));
}

void Range::end() {
  Recorder& r = g_recorder;
  if (r.options.device.is_cuda()) {
    cuda::synchronize();  // the range's time is the GPU's
    cuda::nvtx_pop();
  }
  Event& e = r.events[size_t(index_)];
  e.end_ns = now_ns();
  if (e.kind == Kind::backward) --r.backward_depth;
  // Ranges end innermost first (they are scoped); an exception unwinding through them does too.
  if (!r.open.empty() && r.open.back() == index_) r.open.pop_back();
}

void Range::set_shapes(std::initializer_list<const Tensor*> inputs) {
  if (!on()) return;
  std::string& s = g_recorder.events[size_t(index_)].shapes;
  for (const Tensor* t : inputs) {
    if (!t || !t->defined()) continue;
    if (!s.empty()) s += ' ';
    s += shape_str(t->shape());
  }
}
void Range::set_flops(double flops) {
  if (on()) g_recorder.events[size_t(index_)].flops = flops;
}
void Range::set_bytes(double bytes) {
  if (on()) g_recorder.events[size_t(index_)].bytes = bytes;
}

void OpRange::describe(std::initializer_list<const Tensor*> inputs) {
  set_shapes(inputs);
  double bytes = 0;
  for (const Tensor* t : inputs)
    if (t && t->defined()) bytes += double(t->nbytes());
  set_bytes(bytes);
}

void Range::add_bytes(double bytes) {
  if (on()) g_recorder.events[size_t(index_)].bytes += bytes;
}

void OpRange::add_output_bytes(const Tensor& out) {
  if (on() && out.defined()) add_bytes(double(out.nbytes()));
}

}  // namespace retort::profiler
