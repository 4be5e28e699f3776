// Data parallelism for a stage (see train/data_parallel.h): the plan, its checks, replication
// from rank 0, the step over this rank's slice, and the replica check.
#include "train/data_parallel.h"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include "engine/autograd.h"
#include "engine/dist/nccl.h"
#include "engine/dist/shard.h"
#include "engine/error.h"
#include "engine/nn/module_rng.h"
#include "engine/ops.h"
#include "train/evaluate.h"

namespace retort {
namespace {

// The communicator gradients of device tensors go through: NCCL when every rank has a GPU of
// its own, else the host communicator (a host copy each way). Made once, by every rank alike.
dist::Communicator* gradient_group(Device device) {
  dist::Communicator& world = dist::world();
  if (!device.is_cuda() || world.size() == 1) return &world;
  static std::unique_ptr<dist::Communicator> nccl;
  static bool tried = false;
  if (!tried) {
    tried = true;
    std::string why;
    nccl = dist::make_nccl_communicator(world, device.index, why);
    if (!nccl && world.is_root())
      std::fprintf(stderr, "[retort] NCCL not used (%s): gradients go through host copies over MPI\n", why.c_str());
  }
  return nccl ? nccl.get() : &world;
}

// The float buffers a step may change: the student's, then the loss terms'.
nn::NamedTensors float_buffers(const StepParts& parts) {
  nn::NamedTensors out;
  for (auto& [n, t] : parts.student->named_buffers())
    if (is_floating(t.dtype())) out.push_back({n, t});
  const auto& losses = parts.losses->losses;
  for (size_t i = 0; i < losses.size(); ++i)
    for (auto& [n, t] : losses[i]->buffers())
      if (is_floating(t.dtype())) out.push_back({fmt::format("loss{}.{}", i, n), t});
  return out;
}

// What a step starts from, for micro-batches after the first (they start where the first did)
// and to see which buffers a step changed.
struct StepStart {
  std::vector<Tensor> buffers;  // copies of float_buffers()
  StringMap rngs;               // the student's Dropout generators
};

StepStart capture(const StepParts& parts, const nn::NamedTensors& buffers) {
  StepStart s;
  for (auto& [n, t] : buffers) s.buffers.push_back(t.detach().clone());
  nn::capture_module_rngs(*parts.student, "", s.rngs);
  return s;
}

void restore(const StepParts& parts, const nn::NamedTensors& buffers, const StepStart& s) {
  NoGradGuard ng;
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].second.detach().copy_(s.buffers[i]);
  nn::restore_module_rngs(*parts.student, "", s.rngs);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor ha = a.detach().contiguous().to(Device::cpu()), hb = b.detach().contiguous().to(Device::cpu());
  return ha.nbytes() == hb.nbytes() && std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()) == 0;
}

// Which buffers the step changed on rank 0's first slice (BatchNorm running statistics of
// modules in training mode), decided there and sent to every rank so all lay out alike.
std::vector<char> changed_buffers(const ParallelPlan& plan, const nn::NamedTensors& buffers, const StepStart& start) {
  std::vector<char> changed(buffers.size(), 0);
  for (size_t i = 0; i < buffers.size(); ++i) changed[i] = !same_bits(buffers[i].second, start.buffers[i]);
  if (!changed.empty()) plan.world->broadcast_bytes(changed.data(), changed.size(), 0);
  return changed;
}

// This slice's contribution, flattened in a fixed order: every defined gradient of what trains,
// then the changed buffers (averaged over the slices only when BatchNorm is per slice).
struct SliceLayout {
  std::vector<size_t> grads;    // indices into parts.trained with a gradient
  std::vector<size_t> buffers;  // indices into float_buffers() that are averaged
};

Tensor flatten(const StepParts& parts, const nn::NamedTensors& buffers, const SliceLayout& layout) {
  std::vector<Tensor> pieces;
  for (size_t i : layout.grads) pieces.push_back((*parts.trained)[i].second.grad().reshape({-1}).to(DType::f32));
  for (size_t i : layout.buffers) pieces.push_back(buffers[i].second.detach().reshape({-1}).to(DType::f32));
  if (pieces.empty()) return Tensor::zeros({0});
  return concat(pieces, 0).to(Device::cpu()).contiguous();
}

void unflatten(const StepParts& parts, const nn::NamedTensors& buffers, const SliceLayout& layout, const Tensor& flat) {
  NoGradGuard ng;
  int64_t at = 0;
  auto next = [&](const Tensor& like) {
    Tensor piece = flat.slice(0, at, at + like.numel()).reshape(like.shape()).to(like.dtype()).to(like.device());
    at += like.numel();
    return piece;
  };
  for (size_t i : layout.grads) {
    Tensor p = (*parts.trained)[i].second;
    p.set_grad(next(p));
  }
  for (size_t i : layout.buffers) buffers[i].second.detach().copy_(next(buffers[i].second));
}

// The slices' flat contributions summed in slice order: ((s0 + s1) + s2) + ..., on the host.
Tensor ordered_sum(const std::vector<Tensor>& slices) {
  if (slices.size() == 1) return slices[0];
  Tensor out = slices[0].clone();
  const size_t n = size_t(out.numel());
  std::vector<float> gathered;
  gathered.reserve(n * slices.size());
  for (const auto& s : slices) gathered.insert(gathered.end(), s.data<float>(), s.data<float>() + n);
  dist::sum_in_rank_order(gathered.data(), int(slices.size()), n, out.data<float>());
  return out;
}

struct Decisions {
  int32_t nonfinite = 0, signal = 0;
};

std::string ranks_where(const std::vector<Decisions>& all) {
  std::vector<int> bad;
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r].nonfinite) bad.push_back(int(r));
  return fmt::format("{}", fmt::join(bad, ", "));
}

// Which gradients and buffers a slice contributes (decided on the first slice, the same on
// every rank): every defined gradient of what trains, and the buffers per-slice BatchNorm changed.
SliceLayout slice_layout(const StepParts& parts, const ParallelPlan& plan, const nn::NamedTensors& buffers,
                         const StepStart& start) {
  SliceLayout layout;
  for (size_t i = 0; i < parts.trained->size(); ++i) {
    const auto& [name, p] = (*parts.trained)[i];
    if (dist_fault("skip_loss_grads") && name.rfind("loss", 0) == 0) continue;
    if (p.grad().defined()) layout.grads.push_back(i);
  }
  if (!plan.sync_bn) {
    const std::vector<char> changed = changed_buffers(plan, buffers, start);
    for (size_t i = 0; i < changed.size(); ++i)
      if (changed[i]) layout.buffers.push_back(i);
  }
  return layout;
}

// What this rank's slices of one global batch gave.
struct SliceResults {
  SliceLayout layout;
  std::vector<Tensor> flats, logits;  // each slice's flat contribution and logits
  double loss_sum = 0;
  int64_t hits = 0;
  Decisions mine;
  std::vector<double> bad_terms;  // the first non-finite slice's terms, to name the culprit
  double bad_total = 0;
};

// The rows of slice m of M of a batch of `rows`.
std::pair<int64_t, int64_t> slice_rows(int64_t rows, int m, int M) { return {rows * m / M, rows * (m + 1) / M}; }

// This rank's slice of the global batch, as micro_batches slices one after the other: each
// starts from the step's start, runs forward and backward, and leaves its flat contribution.
SliceResults run_slices(const StepParts& parts, const ParallelPlan& plan, const Tensor& x, const Tensor& y,
                        const std::vector<int64_t>* positions, const transfer::StepClock& clock,
                        const nn::NamedTensors& buffers, const StepStart& start, int64_t global_rows) {
  const int M = plan.micro_batches;
  SliceResults r;
  for (int m = 0; m < M; ++m) {
    if (m > 0) restore(parts, buffers, start);
    const auto [a, b] = slice_rows(x.size(0), dist_fault("same_slice") ? 0 : m, M);
    std::vector<int64_t> pos;
    if (positions) pos.assign(positions->begin() + a, positions->begin() + b);
    const Tensor xs = M == 1 ? x : x.slice(0, a, b), ys = (M == 1 || !y.defined()) ? y : y.slice(0, a, b);
    dist::ShardScope scope({plan.rank * M + m, plan.slices(), plan.sync_bn ? plan.grads : nullptr, m > 0,
                            dist_fault("same_slice") ? 0 : global_rows});
    StepForward f = forward_losses(parts, xs, ys, positions ? &pos : nullptr, clock);
    const double value = f.total.item();  // ranks decide on the host (MPI); see docs/distributed.md
    if (!std::isfinite(value) && !r.mine.nonfinite) {
      r.mine.nonfinite = 1;
      r.bad_terms = term_values(f);
      r.bad_total = value;
    }
    backward_losses(parts, f);
    if (m == 0) r.layout = slice_layout(parts, plan, buffers, start);
    r.flats.push_back(flatten(parts, buffers, r.layout));
    r.loss_sum += value;
    if (ys.defined()) {
      TopkCounts c;
      count_topk(f.student_logits, ys, c);
      r.hits += c.top1;
    }
    r.logits.push_back(f.student_logits);
  }
  return r;
}

// Every rank stops alike when any rank's loss was not finite, naming the term where it can.
void stop_unless_finite(const StepParts& parts, const ParallelPlan& plan, const SliceResults& r,
                        const std::vector<Decisions>& all, const std::function<std::string()>& where) {
  if (r.mine.nonfinite)
    fail_nonfinite_loss(parts, r.bad_terms, r.bad_total, fmt::format("{} ({})", where(), plan.world->where()));
  if (std::any_of(all.begin(), all.end(), [](const Decisions& d) { return d.nonfinite; }))
    fail("{}: the loss is not finite on rank(s) {}; stopping", where(), ranks_where(all));
}

}  // namespace

bool dist_fault(const char* name) {
  static const std::string fault = [] {
    const char* v = std::getenv("RETORT_DIST_FAULT");
    return std::string(v ? v : "");
  }();
  return fault == name;
}

ParallelPlan plan_stage(const StageSpec& stage, Device device) {
  ParallelPlan p;
  p.world = &dist::world();
  p.ranks = p.world->size();
  p.rank = p.world->rank();
  p.micro_batches = int(stage.micro_batches);
  p.sync_bn = stage.batch_norm == BatchNormMode::sync && p.ranks > 1;
  p.grads = gradient_group(device);
  return p;
}

void check_parallel_stage(const Recipe& recipe, const StageSpec& stage, const StageLosses& losses, int ranks) {
  const int64_t slices = int64_t(ranks) * stage.micro_batches;
  if (slices == 1) return;
  const std::string how = fmt::format("{} rank(s) x {} micro-batch(es)", ranks, stage.micro_batches);
  RETORT_CHECK(stage.batch_size % slices == 0,
               "{}: stage '{}': batch_size {} (the global batch) does not split into {} equal slices ({}); choose a "
               "multiple of {}",
               recipe.where(stage.pos), stage.name, stage.batch_size, slices, how, slices);
  RETORT_CHECK(!(stage.batch_norm == BatchNormMode::sync && ranks > 1 && stage.micro_batches > 1),
               "{}: stage '{}': batch_norm = \"sync\" on {} ranks cannot also take micro_batches = {}: SyncBN needs "
               "every slice of the global batch at once; use batch_norm = \"per_rank\" or micro_batches = 1",
               recipe.where(stage.pos), stage.name, ranks, stage.micro_batches);
  for (size_t i = 0; i < losses.losses.size(); ++i)
    if (const std::string why = losses.losses[i]->couples_examples(); !why.empty())
      fail("{}: stage '{}': loss '{}' cannot be split over {} yet: {}, so the slices' values would not add up to the "
           "whole batch's. Run this stage with one process and micro_batches = 1",
           recipe.where(stage.losses[i].pos), stage.name, stage.losses[i].name, how, why);
}

void replicate_from_root(const ParallelPlan& plan, const nn::NamedTensors& tensors) {
  if (plan.ranks == 1) return;
  NoGradGuard ng;
  for (const auto& [name, t] : tensors) {
    Tensor c = t.detach();
    RETORT_CHECK(c.is_contiguous(), "replicate_from_root: '{}' is not contiguous", name);
    plan.grads->broadcast(c, 0);
  }
}

StepOutput parallel_step(const StepParts& parts, const ParallelPlan& plan, const Tensor& x, const Tensor& y,
                         const std::vector<int64_t>* positions, const transfer::StepClock& clock, int interrupt,
                         const std::function<std::string()>& where, int64_t global_rows) {
  // What the step starts from: for the micro-batches after the first, and to see which buffers
  // per-slice BatchNorm changed (SyncBN with one slice per rank needs neither).
  const bool per_slice = plan.micro_batches > 1 || !plan.sync_bn;
  const nn::NamedTensors buffers = per_slice ? float_buffers(parts) : nn::NamedTensors{};
  const StepStart start = per_slice ? capture(parts, buffers) : StepStart{};
  SliceResults r = run_slices(parts, plan, x, y, positions, clock, buffers, start, global_rows);
  Tensor total = ordered_sum(r.flats);
  plan.grads->allreduce_sum(total);
  Tensor scalars = Tensor::from_vector({r.loss_sum, double(r.hits), double(x.size(0))}, {3}, DType::f64);
  plan.world->allreduce_sum(scalars);
  r.mine.signal = interrupt;
  std::vector<Decisions> all(size_t(plan.ranks));
  plan.world->allgather_bytes(&r.mine, all.data(), sizeof(Decisions));
  stop_unless_finite(parts, plan, r, all, where);
  {
    NoGradGuard ng;
    unflatten(parts, buffers, r.layout, dist_fault("no_scale") ? total : mul(total, 1.0 / double(plan.slices())));
  }
  update_parameters_checked(parts, where);
  const auto sums = scalars.to_vector();
  StepOutput out;
  out.loss = sums[0] / double(plan.slices());
  out.student_logits = r.logits.size() == 1 ? r.logits[0] : concat(r.logits, 0);
  out.top1_hits = y.defined() ? int64_t(sums[1]) : -1;
  out.seen = int64_t(sums[2]);
  for (const auto& d : all) out.signal = std::max(out.signal, int(d.signal));
  return out;
}

void rank_fault_for_test(const ParallelPlan& plan, int64_t step) {
  static const std::string spec = [] {
    const char* v = std::getenv("RETORT_TEST_RANK_FAULT");
    return std::string(v ? v : "");
  }();
  if (spec.empty()) return;
  int rank = -1;
  long long at = -1;
  char what[16] = {};
  if (std::sscanf(spec.c_str(), "%d:%lld:%15s", &rank, &at, what) != 3 || rank != plan.rank || at != step) return;
  if (std::string(what) == "error") fail("RETORT_TEST_RANK_FAULT: rank {} fails after step {} (as asked)", rank, step);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));  // hang
}

void verify_replicas(const ParallelPlan& plan, const nn::NamedTensors& tensors, int64_t step) {
  if (plan.ranks == 1) return;
  uint64_t h = 1469598103934665603ull;  // FNV-1a over every tensor's bytes
  for (const auto& [name, t] : tensors) {
    Tensor c = t.detach().contiguous().to(Device::cpu());
    const auto* p = static_cast<const unsigned char*>(c.raw_data());
    for (size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  std::vector<uint64_t> all(size_t(plan.ranks));
  plan.world->allgather_bytes(&h, all.data(), sizeof(h));
  for (int r = 1; r < plan.ranks; ++r)
    RETORT_CHECK(all[size_t(r)] == all[0], "after step {}: rank {}'s weights differ from rank 0's (the replicas "
                 "diverged)", step, r);
}

}  // namespace retort
