// What a profile's events (engine/profiler.h) add up to: a row per op (calls, total and self
// time, forward and backward time, achieved GFLOP/s or GB/s, the shapes of its slowest call),
// a row per step phase, allocations per step; printed as tables, and written as a Chrome /
// Perfetto trace (chrome://tracing, ui.perfetto.dev).
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "engine/profiler.h"

namespace retort::profiler {

struct OpRow {
  std::string name;
  int64_t calls = 0;           // forward calls plus backward nodes
  double total_ms = 0;         // inclusive, per step (nested calls of the same op counted once)
  double self_ms = 0;          // without the ops it called, per step
  double forward_ms = 0, backward_ms = 0;  // inclusive, per step
  double flops = 0, bytes = 0;  // per step
  double gflops_per_s = 0, gbytes_per_s = 0;  // over the calls that define them; 0 when none do
  double slowest_call_ms = 0;
  std::string slowest_call_shapes;
};

struct PhaseRow {
  std::string name;
  double ms = 0;  // per step
};

struct Summary {
  int64_t steps = 0;
  double step_ms = 0;             // mean over the profiled steps
  double profiled_ms = 0;         // all events' span
  std::vector<OpRow> ops;         // by self time, largest first
  std::vector<PhaseRow> phases;   // in the order they first ran, then "other"
  double allocations_per_step = 0, allocated_mb_per_step = 0;
  int64_t events = 0;
};

// Adds up events recorded over `steps` steps (each a Kind::step range).
Summary summarise(const std::vector<Event>& events);

// The tables, for a terminal: phases, then the `top` ops by self time.
std::string format_summary(const Summary& s, size_t top = 25);

// The summary as JSON: steps, step_ms, phases [{name, ms}], ops [{name, calls, ...}].
nlohmann::json summary_json(const Summary& s);

// The Chrome trace event format: one complete ("X") event per range, microseconds, with the
// shapes, FLOPs and bytes as arguments.
nlohmann::json chrome_trace(const std::vector<Event>& events, const std::string& process_name);

}  // namespace retort::profiler
