// f32 convolutions through oneDNN's blocked direct kernels (see kernels/cpu/conv_onednn.h).
#include "kernels/cpu/conv_onednn.h"
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include "core/check.h"

#ifdef RETORT_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace retort::cpu {
namespace {

ConvBackend initial_backend() {
  const char* env = std::getenv("RETORT_CPU_CONV");
  if (env && std::strcmp(env, "reference") == 0) return ConvBackend::reference;
  RETORT_REQUIRE(!env || !*env || std::strcmp(env, "onednn") == 0, "RETORT_CPU_CONV='", env,
                 "' is not a CPU convolution backend (reference or onednn)");
  return onednn_available() ? ConvBackend::onednn : ConvBackend::reference;
}
std::atomic<ConvBackend>& backend_setting() {
  static std::atomic<ConvBackend> backend{initial_backend()};
  return backend;
}

}  // namespace

ConvBackend conv_backend() { return backend_setting().load(std::memory_order_relaxed); }
void set_conv_backend(ConvBackend backend) {
  RETORT_REQUIRE(backend == ConvBackend::reference || onednn_available(),
                 "the oneDNN convolution backend is not built into this retort");
  backend_setting().store(backend, std::memory_order_relaxed);
}

#ifndef RETORT_WITH_ONEDNN
bool onednn_available() { return false; }
namespace onednn {
bool conv2d_forward(const Conv2dGeometry&, const float*, const float*, const float*, float*) { return false; }
bool conv2d_backward_input(const Conv2dGeometry&, const float*, const float*, float*) { return false; }
bool conv2d_backward_weight(const Conv2dGeometry&, const float*, const float*, float*) { return false; }
}  // namespace onednn
#else
bool onednn_available() { return true; }

namespace onednn {
namespace {
using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One geometry's memory descriptors (retort's plain layouts) and its primitives, built on first use.
struct Problem {
  memory::desc src, weights, bias, dst;  // NCHW / OIHW (GOIHW when grouped) / [O]
  memory::dims strides, dilates, pad_l, pad_r;
  std::unique_ptr<dnnl::convolution_forward::primitive_desc> fwd, fwd_bias;
  std::unique_ptr<dnnl::convolution_backward_data::primitive_desc> bwd_data;
  std::unique_ptr<dnnl::convolution_backward_weights::primitive_desc> bwd_weights;
  // Primitives are kept with their descriptors (creating one JIT-compiles a kernel).
  std::unique_ptr<dnnl::primitive> fwd_p, fwd_bias_p, bwd_data_p, bwd_weights_p;
};

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t>;
Key key_of(const Conv2dGeometry& g) {  // the output size follows from these
  return {g.n, g.c, g.h, g.w, g.oc, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups};
}

Problem make_problem(const Conv2dGeometry& g) {
  Problem p;
  const auto f32 = memory::data_type::f32;
  p.src = memory::desc({g.n, g.c, g.h, g.w}, f32, tag::nchw);
  p.dst = memory::desc({g.n, g.oc, g.oh, g.ow}, f32, tag::nchw);
  p.weights = g.groups == 1 ? memory::desc({g.oc, g.c, g.kh, g.kw}, f32, tag::oihw)
                            : memory::desc({g.groups, g.oc / g.groups, g.c / g.groups, g.kh, g.kw}, f32, tag::goihw);
  p.bias = memory::desc({g.oc}, f32, tag::x);
  p.strides = {g.stride_h, g.stride_w};
  p.dilates = {g.dil_h - 1, g.dil_w - 1};  // oneDNN counts the gaps
  p.pad_l = {g.pad_h, g.pad_w};
  // The high-side padding that gives retort's (PyTorch's) output size.
  p.pad_r = {(g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1 - g.h - g.pad_h,
             (g.ow - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1 - g.w - g.pad_w};
  return p;
}

// The same dims, any layout: oneDNN picks its blocked one.
memory::desc any(const memory::desc& d) { return memory::desc(d.dims(), d.data_type(), tag::any); }

dnnl::convolution_forward::primitive_desc forward_pd(const Problem& p, bool with_bias) {
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                     any(p.src), any(p.weights), with_bias ? any(p.bias) : memory::desc(), any(p.dst),
                                     p.strides, p.dilates, p.pad_l, p.pad_r);
  return dnnl::convolution_forward::primitive_desc(d, cpu_engine());
}

std::mutex g_mutex;
std::map<Key, std::unique_ptr<Problem>>& problems() {
  static std::map<Key, std::unique_ptr<Problem>> cache;
  return cache;
}

// The problem of `g`, with the primitive `which` built (0 forward, 1 forward with bias,
// 2 backward data, 3 backward weights).
Problem& problem_for(const Conv2dGeometry& g, int which) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& slot = problems()[key_of(g)];
  if (!slot) slot = std::make_unique<Problem>(make_problem(g));
  Problem& p = *slot;
  if (which == 0 && !p.fwd) {
    p.fwd = std::make_unique<dnnl::convolution_forward::primitive_desc>(forward_pd(p, false));
    p.fwd_p = std::make_unique<dnnl::convolution_forward>(*p.fwd);
  }
  if (which == 1 && !p.fwd_bias) {
    p.fwd_bias = std::make_unique<dnnl::convolution_forward::primitive_desc>(forward_pd(p, true));
    p.fwd_bias_p = std::make_unique<dnnl::convolution_forward>(*p.fwd_bias);
  }
  if (which >= 2 && !p.fwd) {  // the backward primitives take the forward one as a hint
    p.fwd = std::make_unique<dnnl::convolution_forward::primitive_desc>(forward_pd(p, false));
    p.fwd_p = std::make_unique<dnnl::convolution_forward>(*p.fwd);
  }
  if (which == 2 && !p.bwd_data) {
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, any(p.src), any(p.weights),
                                            any(p.dst), p.strides, p.dilates, p.pad_l, p.pad_r);
    p.bwd_data = std::make_unique<dnnl::convolution_backward_data::primitive_desc>(d, cpu_engine(), *p.fwd);
    p.bwd_data_p = std::make_unique<dnnl::convolution_backward_data>(*p.bwd_data);
  }
  if (which == 3 && !p.bwd_weights) {
    dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, any(p.src), any(p.weights),
                                               any(p.dst), p.strides, p.dilates, p.pad_l, p.pad_r);
    p.bwd_weights = std::make_unique<dnnl::convolution_backward_weights::primitive_desc>(d, cpu_engine(), *p.fwd);
    p.bwd_weights_p = std::make_unique<dnnl::convolution_backward_weights>(*p.bwd_weights);
  }
  return p;
}

// A user buffer in retort's layout, and the primitive's view of it: the same memory when the
// layouts agree, else a scratch buffer in the primitive's layout, filled by a reorder for inputs
// and reordered back into the user's buffer for outputs.
class Operand {
 public:
  Operand(const memory::desc& user_desc, const memory::desc& wanted, const void* data)
      : user_(user_desc, cpu_engine(), const_cast<void*>(data)),
        inner_(user_desc == wanted ? user_ : memory(wanted, cpu_engine())) {}
  bool reordered() const { return inner_.get_desc() != user_.get_desc(); }
  void load(dnnl::stream& s) {
    if (reordered()) dnnl::reorder(user_, inner_).execute(s, user_, inner_);
  }
  void store(dnnl::stream& s) {
    if (reordered()) dnnl::reorder(inner_, user_).execute(s, inner_, user_);
  }
  const memory& inner() const { return inner_; }

 private:
  memory user_, inner_;
};

// Reorders the inputs into the layouts the primitive wants, runs it (with `args` beside them,
// e.g. the bias), and reorders its output back into the caller's NCHW buffer.
void execute(const dnnl::primitive& primitive, std::initializer_list<std::pair<int, Operand*>> inputs,
             std::pair<int, Operand*> output, std::unordered_map<int, memory> args = {}) {
  dnnl::stream s(cpu_engine());
  for (const auto& [arg, operand] : inputs) {
    operand->load(s);
    args[arg] = operand->inner();
  }
  args[output.first] = output.second->inner();
  primitive.execute(s, args);
  output.second->store(s);
  s.wait();
}

template <typename Body>
bool run_guarded(const char* what, Body&& body) {
  try {
    body();
    return true;
  } catch (const dnnl::error& e) {
    raise("oneDNN ", what, " failed: ", e.what(), " (status ", int(e.status), "); RETORT_CPU_CONV=reference runs the "
          "plain kernels");
  }
}

}  // namespace

bool conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  return run_guarded("convolution forward", [&] {
    Problem& p = problem_for(g, bias ? 1 : 0);
    const auto& pd = bias ? *p.fwd_bias : *p.fwd;
    Operand src(p.src, pd.src_desc(), x), weights(p.weights, pd.weights_desc(), w), dst(p.dst, pd.dst_desc(), y);
    std::unordered_map<int, memory> bias_arg;
    if (bias) bias_arg[DNNL_ARG_BIAS] = memory(p.bias, cpu_engine(), const_cast<float*>(bias));
    execute(bias ? *p.fwd_bias_p : *p.fwd_p, {{DNNL_ARG_SRC, &src}, {DNNL_ARG_WEIGHTS, &weights}}, {DNNL_ARG_DST, &dst},
            std::move(bias_arg));
  });
}

bool conv2d_backward_input(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  return run_guarded("convolution backward (input)", [&] {
    Problem& p = problem_for(g, 2);
    const auto& pd = *p.bwd_data;
    Operand diff_dst(p.dst, pd.diff_dst_desc(), gy), weights(p.weights, pd.weights_desc(), w),
        diff_src(p.src, pd.diff_src_desc(), gx);
    execute(*p.bwd_data_p, {{DNNL_ARG_DIFF_DST, &diff_dst}, {DNNL_ARG_WEIGHTS, &weights}},
            {DNNL_ARG_DIFF_SRC, &diff_src});
  });
}

bool conv2d_backward_weight(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  return run_guarded("convolution backward (weights)", [&] {
    Problem& p = problem_for(g, 3);
    const auto& pd = *p.bwd_weights;
    Operand src(p.src, pd.src_desc(), x), diff_dst(p.dst, pd.diff_dst_desc(), gy),
        diff_weights(p.weights, pd.diff_weights_desc(), gw);
    execute(*p.bwd_weights_p, {{DNNL_ARG_SRC, &src}, {DNNL_ARG_DIFF_DST, &diff_dst}},
            {DNNL_ARG_DIFF_WEIGHTS, &diff_weights});
  });
}

}  // namespace onednn
#endif

}  // namespace retort::cpu
