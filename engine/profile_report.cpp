// Summaries, tables and traces of a profile's events (see engine/profile_report.h).
#include "engine/profile_report.h"
#include <algorithm>
#include <map>
#include <fmt/format.h>

namespace retort::profiler {
namespace {

// True when an enclosing event is the same op: its time is already in that one's total.
bool nested_in_same_op(const std::vector<Event>& events, const Event& e) {
  for (int32_t p = e.parent; p >= 0; p = events[size_t(p)].parent) {
    const Event& up = events[size_t(p)];
    if (up.name == e.name && (up.kind == Kind::op || up.kind == Kind::backward)) return true;
  }
  return false;
}

std::vector<int64_t> child_time_ns(const std::vector<Event>& events) {
  std::vector<int64_t> children(events.size(), 0);
  for (const Event& e : events)
    if (e.parent >= 0) children[size_t(e.parent)] += e.duration_ns();
  return children;
}

double ms(double ns) { return ns / 1e6; }

}  // namespace

Summary summarise(const std::vector<Event>& events) {
  Summary s;
  s.events = int64_t(events.size());
  if (events.empty()) return s;
  const std::vector<int64_t> children = child_time_ns(events);
  std::map<std::string, OpRow> ops;
  std::map<std::string, double> flop_ns, byte_ns;  // time of the calls that define FLOPs / bytes
  std::vector<std::string> phase_order;
  std::map<std::string, double> phase_ns;
  double step_ns = 0;
  int64_t allocations = 0, allocated = 0, first = events.front().start_ns, last = 0;
  for (const Event& e : events) {
    last = std::max(last, e.end_ns);
    const double d = double(e.duration_ns());
    if (e.kind == Kind::step) {
      ++s.steps;
      step_ns += d;
      allocations += e.allocations;
      allocated += e.allocated_bytes;
      continue;
    }
    if (e.kind == Kind::phase) {
      if (!phase_ns.count(e.name)) phase_order.push_back(e.name);
      phase_ns[e.name] += d;
      continue;
    }
    OpRow& row = ops[e.name];
    row.name = e.name;
    ++row.calls;
    row.self_ms += d - double(children[size_t(&e - events.data())]);
    if (d > row.slowest_call_ms) {
      row.slowest_call_ms = d;
      row.slowest_call_shapes = (e.kind == Kind::backward ? "backward " : "") + e.shapes;
    }
    if (nested_in_same_op(events, e)) continue;
    row.total_ms += d;
    (e.kind == Kind::backward || e.in_backward ? row.backward_ms : row.forward_ms) += d;
    if (e.flops > 0) {
      row.flops += e.flops;
      flop_ns[e.name] += d;
    } else if (e.bytes > 0) {
      row.bytes += e.bytes;
      byte_ns[e.name] += d;
    }
  }
  s.profiled_ms = ms(double(last - first));
  const double steps = double(std::max<int64_t>(s.steps, 1));
  s.step_ms = ms(step_ns) / steps;
  s.allocations_per_step = double(allocations) / steps;
  s.allocated_mb_per_step = double(allocated) / double(1 << 20) / steps;
  for (auto& [name, row] : ops) {
    if (flop_ns[name] > 0) row.gflops_per_s = row.flops / flop_ns[name];  // FLOP per ns = GFLOP/s
    if (byte_ns[name] > 0) row.gbytes_per_s = row.bytes / byte_ns[name];
    row.calls = int64_t(double(row.calls) / steps + 0.5);
    for (double* v : {&row.total_ms, &row.self_ms, &row.forward_ms, &row.backward_ms}) *v = ms(*v) / steps;
    row.flops /= steps;
    row.bytes /= steps;
    row.slowest_call_ms = ms(row.slowest_call_ms);
    s.ops.push_back(row);
  }
  std::sort(s.ops.begin(), s.ops.end(), [](const OpRow& a, const OpRow& b) { return a.self_ms > b.self_ms; });
  double phases = 0;
  for (const auto& name : phase_order) {
    s.phases.push_back({name, ms(phase_ns[name]) / steps});
    phases += s.phases.back().ms;
  }
  if (!s.phases.empty()) s.phases.push_back({"other", std::max(0.0, s.step_ms - phases)});
  return s;
}

std::string format_summary(const Summary& s, size_t top) {
  std::string out = fmt::format("{} steps, {:.2f} ms per step; {:.0f} allocations ({:.1f} MB) per step\n\n", s.steps,
                                s.step_ms, s.allocations_per_step, s.allocated_mb_per_step);
  if (!s.phases.empty()) {
    out += fmt::format("{:<22} {:>10} {:>7}\n", "phase", "ms/step", "%");
    for (const auto& p : s.phases)
      out += fmt::format("{:<22} {:>10.2f} {:>6.1f}%\n", p.name, p.ms, s.step_ms > 0 ? 100.0 * p.ms / s.step_ms : 0.0);
    out += "\n";
  }
  out += fmt::format("{:<24} {:>6} {:>9} {:>6} {:>9} {:>9} {:>9} {:>8} {:>7}  {}\n", "op (ms per step)", "calls",
                     "self", "%", "total", "forward", "backward", "GFLOP/s", "GB/s", "slowest call: ms, input shapes");
  for (size_t i = 0; i < std::min(top, s.ops.size()); ++i) {
    const OpRow& r = s.ops[i];
    out += fmt::format("{:<24} {:>6} {:>9.2f} {:>5.1f}% {:>9.2f} {:>9.2f} {:>9.2f} {:>8} {:>7}  {:.2f} {}\n",
                       r.name.substr(0, 24), r.calls, r.self_ms, s.step_ms > 0 ? 100.0 * r.self_ms / s.step_ms : 0.0,
                       r.total_ms, r.forward_ms, r.backward_ms,
                       r.gflops_per_s > 0 ? fmt::format("{:.1f}", r.gflops_per_s) : "",
                       r.gbytes_per_s > 0 ? fmt::format("{:.1f}", r.gbytes_per_s) : "", r.slowest_call_ms,
                       r.slowest_call_shapes);
  }
  if (s.ops.size() > top) out += fmt::format("... and {} more ops\n", s.ops.size() - top);
  return out;
}

nlohmann::json summary_json(const Summary& s) {
  nlohmann::json phases = nlohmann::json::array(), ops = nlohmann::json::array();
  for (const auto& p : s.phases) phases.push_back({{"name", p.name}, {"ms", p.ms}});
  for (const auto& r : s.ops)
    ops.push_back({{"name", r.name},
                   {"calls", r.calls},
                   {"total_ms", r.total_ms},
                   {"self_ms", r.self_ms},
                   {"forward_ms", r.forward_ms},
                   {"backward_ms", r.backward_ms},
                   {"flops", r.flops},
                   {"bytes", r.bytes},
                   {"gflops_per_s", r.gflops_per_s},
                   {"gbytes_per_s", r.gbytes_per_s},
                   {"slowest_call_ms", r.slowest_call_ms},
                   {"slowest_call_shapes", r.slowest_call_shapes}});
  return {{"steps", s.steps},
          {"step_ms", s.step_ms},
          {"allocations_per_step", s.allocations_per_step},
          {"allocated_mb_per_step", s.allocated_mb_per_step},
          {"events", s.events},
          {"phases", std::move(phases)},
          {"ops", std::move(ops)}};
}

nlohmann::json chrome_trace(const std::vector<Event>& events, const std::string& process_name) {
  nlohmann::json list = nlohmann::json::array();
  list.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"tid", 1}, {"args", {{"name", process_name}}}});
  for (const Event& e : events) {
    nlohmann::json args = {{"depth", e.depth}};
    if (!e.shapes.empty()) args["shapes"] = e.shapes;
    if (e.flops > 0) args["flops"] = e.flops;
    if (e.bytes > 0) args["bytes"] = e.bytes;
    if (e.allocations > 0) args["allocations"] = e.allocations;
    if (e.in_backward) args["in_backward"] = true;
    list.push_back({{"name", e.kind == Kind::backward ? e.name + " (backward)" : e.name},
                    {"cat", kind_name(e.kind)},
                    {"ph", "X"},
                    {"ts", double(e.start_ns) / 1e3},
                    {"dur", double(e.duration_ns()) / 1e3},
                    {"pid", 1},
                    {"tid", 1},
                    {"args", std::move(args)}});
  }
  return {{"traceEvents", std::move(list)}, {"displayTimeUnit", "ms"}};
}

}  // namespace retort::profiler
