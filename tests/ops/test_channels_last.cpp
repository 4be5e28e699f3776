// Channels-last (NHWC) memory format (engine/memory_format.h): to_memory_format, the format
// tests and their ties, and every op that keeps the format (unary, scalar, binary, dropout,
// conv2d, batch_norm2d, pools) against the NCHW computation, values and gradients (bitwise on the
// CPU, where both go through the same kernels), f64 gradchecks through the channels-last path,
// a whole resnet8 step, and the CUDA NHWC convolution against the CPU (suite "gpu").
#include <functional>
#include "helpers.h"
#include "models/registry.h"

using namespace retort;
using retort::test::gradcheck;
using retort::test::max_rel_error;
using retort::test::random_tensor;
using retort::test::same_bits;

namespace {
constexpr MemoryFormat kCL = MemoryFormat::channels_last;

Tensor cl(const Tensor& t) { return to_memory_format(t, kCL); }

// Identity whose backward keeps the gradient it receives in *seen: leaves always get a
// contiguous gradient (engine/autograd.cpp), so the format an op gives its input gradient is
// observed here.
Tensor probe(const Tensor& t, Tensor* seen) {
  Tensor out = make_view(t, t.shape(), t.strides(), t.offset());
  record(out, "probe", {t}, [seen](const Tensor& g) {
    *seen = g;
    return std::vector<Tensor>{g};
  });
  return out;
}
bool grad_is_channels_last(const Tensor& seen) { return seen.defined() && suggest_memory_format(seen) == kCL; }

// A random non-zero [N, C, H, W] leaf in NCHW and its channels-last copy, both needing grads.
struct Pair {
  Tensor nchw, nhwc;
};
Pair random_pair(const Shape& s, uint64_t seed, DType dt, double lo = -1.0, double hi = 1.0) {
  Tensor base = random_tensor(s, seed, lo, hi, dt);
  Pair p{base.clone(), cl(base.detach())};
  p.nchw.requires_grad_(true);
  p.nhwc.requires_grad_(true);
  return p;
}

// Runs f on the NCHW and channels-last inputs, contracts with the same random weight (passed in
// the given layout) and checks: output channels-last (when 4-D and expected), values and input
// gradients bitwise equal, input gradient channels-last.
// grad_follows_input: the op gives its input gradient the input's format whatever the format
// of the arriving gradient (false for binary ops, whose input gradient follows the arriving one).
void check_same_as_nchw(const std::function<Tensor(const Tensor&)>& f, const Shape& s, DType dt, bool out_cl = true,
                        bool grad_weight_cl = false, bool grad_follows_input = true) {
  Pair p = random_pair(s, 11, dt);
  Tensor seen;
  Tensor yn = f(p.nchw), yc = f(probe(p.nhwc, &seen));
  if (out_cl) CHECK(suggest_memory_format(yc) == kCL);
  CHECK(same_bits(yc, yn));
  Tensor w = random_tensor(yn.shape(), 12, 0.5, 1.5, dt);
  Tensor wc = grad_weight_cl && w.dim() == 4 ? cl(w) : w;
  sum(mul(yn, w)).backward();
  sum(mul(yc, wc)).backward();
  REQUIRE(p.nhwc.grad().defined());
  CHECK(same_bits(p.nhwc.grad(), p.nchw.grad()));
  if (grad_follows_input || grad_weight_cl) CHECK(grad_is_channels_last(seen));
}

const DType kFloatTypes[] = {DType::f32, DType::f64};
}  // namespace

TEST_CASE("channels_last: to_memory_format strides, round trip, is_channels_last") {
  for (DType dt : kFloatTypes) {
    Tensor x = random_tensor({2, 3, 4, 5}, 1, -1, 1, dt);
    Tensor y = cl(x);
    CHECK(y.shape() == Shape{2, 3, 4, 5});
    CHECK(y.strides() == Shape{60, 1, 15, 3});
    CHECK(is_channels_last(y));
    CHECK(!is_channels_last(x));
    CHECK(!y.is_contiguous());
    CHECK(suggest_memory_format(y) == kCL);
    CHECK(suggest_memory_format(x) == MemoryFormat::contiguous);
    CHECK(same_bits(y, x));
    CHECK(cl(y).impl() == y.impl());  // no-op when already channels-last
    Tensor back = to_memory_format(y, MemoryFormat::contiguous);
    CHECK(back.strides() == contiguous_strides(x.shape()));
    CHECK(same_bits(back, x));
    // The NHWC view of the memory is the plain permute of the NCHW values.
    CHECK(same_bits(y.permute({0, 2, 3, 1}), x.permute({0, 2, 3, 1}).contiguous()));
    CHECK(y.to(DType::bf16).strides() == y.strides());  // casts keep the format
    // Not 4-D, or strided: contiguous.
    CHECK(suggest_memory_format(random_tensor({6, 4}, 2, -1, 1, dt)) == MemoryFormat::contiguous);
    CHECK(!is_channels_last(y.slice(3, 0, 4, 2)));
  }
  CHECK_THROWS_WITH_AS(to_memory_format(Tensor::zeros({2, 3}), kCL), doctest::Contains("4-D"), Error);
}

TEST_CASE("channels_last: ties (C == 1, H == W == 1) are broken by the exact strides") {
  for (const Shape& s : {Shape{2, 1, 4, 5}, Shape{2, 6, 1, 1}}) {
    INFO(shape_str(s));
    Tensor x = random_tensor(s, 3);
    CHECK(is_channels_last(x));  // same memory as channels-last
    CHECK(suggest_memory_format(x) == MemoryFormat::contiguous);
    Tensor y = cl(x);
    CHECK(y.strides() == memory_format_strides(s, kCL));
    CHECK(y.storage() == x.storage());  // restrided, not copied
    CHECK(suggest_memory_format(y) == kCL);
    CHECK(y.is_contiguous());
    Tensor z = to_memory_format(y, MemoryFormat::contiguous);
    CHECK(z.strides() == contiguous_strides(s));
    CHECK(suggest_memory_format(z) == MemoryFormat::contiguous);
    CHECK(same_bits(z, x));
  }
}

TEST_CASE("channels_last: gradients flow through to_memory_format (f64 gradcheck), back in the input's format") {
  Tensor x = random_tensor({2, 3, 3, 4}, 4);
  gradcheck([](const std::vector<Tensor>& in) { return mul(cl(in[0]), 2.0); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return to_memory_format(cl(in[0]), MemoryFormat::contiguous); }, {x});
  Tensor leaf = cl(x).detach().requires_grad_(true), seen;
  Tensor y = to_memory_format(probe(leaf, &seen), MemoryFormat::contiguous);
  sum(mul(y, random_tensor(y.shape(), 5))).backward();
  CHECK(grad_is_channels_last(seen));
  CHECK(same_bits(leaf.grad(), random_tensor(y.shape(), 5)));
}

TEST_CASE("channels_last: unary and scalar ops keep the format, values and gradients bitwise") {
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"relu", [](const Tensor& t) { return relu(t); }},
      {"gelu", [](const Tensor& t) { return gelu(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"tanh", [](const Tensor& t) { return tanh(t); }},
      {"exp", [](const Tensor& t) { return exp(t); }},
      {"abs", [](const Tensor& t) { return abs(t); }},
      {"clamp", [](const Tensor& t) { return clamp(t, -0.5, 0.5); }},
      {"add scalar", [](const Tensor& t) { return add(t, 0.25); }},
      {"mul scalar", [](const Tensor& t) { return mul(t, -3.0); }},
      {"rsub", [](const Tensor& t) { return rsub(1.5, t); }},
      {"rdiv", [](const Tensor& t) { return rdiv(1.5, add(t, 2.0)); }},
      {"neg", [](const Tensor& t) { return neg(t); }},
  };
  for (DType dt : kFloatTypes)
    for (const auto& [name, op] : ops)
      for (bool g_cl : {false, true}) {
        const std::string what = std::string(name) + " " + dtype_name(dt) + (g_cl ? " channels-last gradient" : " NCHW gradient");
        INFO(what);
        check_same_as_nchw(op, {2, 5, 3, 4}, dt, true, g_cl);
      }
}

TEST_CASE("channels_last: binary ops (residual add, broadcast bias, mixed formats)") {
  for (DType dt : kFloatTypes) {
    Tensor other = random_tensor({2, 4, 3, 5}, 21, 0.5, 1.5, dt);
    Tensor bias = random_tensor({4, 1, 1}, 22, 0.5, 1.5, dt);
    const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
        {"add channels-last residual", [&](const Tensor& t) { return add(t, cl(other)); }},
        {"add NCHW residual", [&](const Tensor& t) { return add(t, other); }},
        {"sub", [&](const Tensor& t) { return sub(t, cl(other)); }},
        {"mul", [&](const Tensor& t) { return mul(t, cl(other)); }},
        {"div", [&](const Tensor& t) { return div(t, cl(other)); }},
        {"add bias", [&](const Tensor& t) { return add(t, bias); }},
        {"bias first", [&](const Tensor& t) { return mul(bias, t); }},
        {"self", [&](const Tensor& t) { return mul(t, t); }},
    };
    for (const auto& [name, op] : ops)
      for (bool g_cl : {false, true}) {
        INFO(name << " " << dtype_name(dt));
        check_same_as_nchw(op, {2, 4, 3, 5}, dt, true, g_cl, false);
      }
    // An NCHW first operand of the output's shape decides: NCHW out, values equal; an expanded
  // one has no say.
    Tensor a = random_tensor({2, 4, 3, 5}, 23, -1, 1, dt);
    Tensor mixed = add(a, cl(other));
    CHECK(mixed.is_contiguous());
    CHECK(same_bits(mixed, add(a, other)));
    Tensor expanded = Tensor::scalar(2.0, dt).expand({2, 4, 3, 5});
    CHECK(suggest_memory_format(mul(expanded, cl(other))) == kCL);
  }
  // Gradients of both operands, both channels-last.
  Pair a = random_pair({2, 3, 4, 4}, 24, DType::f64), b = random_pair({2, 3, 4, 4}, 25, DType::f64);
  Tensor seen;
  sum(mul(a.nchw, b.nchw)).backward();
  sum(mul(a.nhwc, probe(b.nhwc, &seen))).backward();
  CHECK(same_bits(b.nhwc.grad(), b.nchw.grad()));
  CHECK(grad_is_channels_last(seen));
}

TEST_CASE("channels_last: dropout keeps the format; mask and gradient consistent") {
  for (DType dt : kFloatTypes)
    for (bool g_cl : {false, true}) {
      Tensor x = cl(random_tensor({2, 4, 3, 5}, 31, 0.5, 1.5, dt)).requires_grad_(true), seen;
      Generator gen(7);
      Tensor y = dropout(probe(x, &seen), 0.5, true, gen);
      CHECK(suggest_memory_format(y) == kCL);
      Tensor w = random_tensor(y.shape(), 32, 0.5, 1.5, dt);
      sum(mul(y, g_cl ? cl(w) : w)).backward();
      CHECK(grad_is_channels_last(seen));
      auto xv = x.to_vector(), yv = y.to_vector(), gv = x.grad().to_vector(), wv = w.to_vector();
      int kept = 0;
      for (size_t i = 0; i < xv.size(); ++i) {
        const bool keep = yv[i] != 0.0;
        kept += keep;
        CHECK(yv[i] == (keep ? xv[i] * 2.0 : 0.0));
        CHECK(gv[i] == (keep ? wv[i] * 2.0 : 0.0));
      }
      CHECK(kept > 0);
      CHECK(kept < int(xv.size()));
    }
}

TEST_CASE("channels_last: conv2d on the CPU equals NCHW bitwise, output and input gradient channels-last") {
  struct Case {
    Shape x, w;
    Conv2dOptions opt;
    bool bias;
  };
  Conv2dOptions s2;
  s2.stride = {2, 2};
  s2.padding = {1, 1};
  Conv2dOptions grouped;
  grouped.groups = 2;
  grouped.padding = {1, 0};
  grouped.dilation = {1, 2};
  Conv2dOptions depthwise;
  depthwise.groups = 4;
  depthwise.padding = {1, 1};
  const std::vector<Case> cases = {
      {{2, 3, 6, 5}, {4, 3, 3, 3}, {}, true},      {{2, 3, 7, 7}, {5, 3, 3, 3}, s2, false},
      {{2, 4, 6, 7}, {6, 2, 3, 2}, grouped, true}, {{1, 4, 5, 5}, {4, 1, 3, 3}, depthwise, false},
      {{2, 1, 6, 6}, {3, 1, 1, 1}, {}, true},
  };
  for (DType dt : kFloatTypes)
    for (const Case& c : cases) {
      INFO(shape_str(c.x) << " weight " << shape_str(c.w) << " " << dtype_name(dt));
      Tensor w = random_tensor(c.w, 41, -1, 1, dt).requires_grad_(true);
      Tensor b = c.bias ? random_tensor({c.w[0]}, 42, -1, 1, dt).requires_grad_(true) : Tensor();
      Pair p = random_pair(c.x, 43, dt);
      if (c.x[1] == 1) p.nhwc = cl(p.nchw.detach()).requires_grad_(true);  // the tie: exact NHWC strides
      Tensor yn = conv2d(p.nchw, w, b, c.opt);
      Tensor gy = random_tensor(yn.shape(), 44, 0.5, 1.5, dt);
      sum(mul(yn, gy)).backward();
      Tensor gw_n = w.grad().clone(), gb_n = c.bias ? b.grad().clone() : Tensor();
      w.zero_grad();
      if (c.bias) b.zero_grad();
      Tensor seen;
      Tensor yc = conv2d(probe(p.nhwc, &seen), w, b, c.opt);
      CHECK(suggest_memory_format(yc) == kCL);
      CHECK(same_bits(yc, yn));
      sum(mul(yc, cl(gy))).backward();
      CHECK(same_bits(p.nhwc.grad(), p.nchw.grad()));
      CHECK(grad_is_channels_last(seen));
      CHECK(same_bits(w.grad(), gw_n));
      CHECK(w.grad().is_contiguous());
      if (c.bias) CHECK(same_bits(b.grad(), gb_n));
    }
}

TEST_CASE("channels_last: batch_norm2d (train and eval) and pools equal NCHW bitwise") {
  for (DType dt : kFloatTypes) {
    INFO(dtype_name(dt));
    Tensor weight = random_tensor({3}, 51, 0.5, 1.5, dt).requires_grad_(true);
    Tensor bias = random_tensor({3}, 52, -1, 1, dt).requires_grad_(true);
    for (bool training : {true, false}) {
      Tensor rm_n = random_tensor({3}, 53, -0.1, 0.1, dt), rv_n = random_tensor({3}, 54, 0.5, 1.5, dt);
      Tensor rm_c = rm_n.clone(), rv_c = rv_n.clone();
      bool nchw_run = true;
      check_same_as_nchw(
          [&](const Tensor& t) {
            Tensor rm = nchw_run ? rm_n : rm_c, rv = nchw_run ? rv_n : rv_c;
            nchw_run = false;
            return batch_norm2d(t, weight, bias, rm, rv, training, 0.1, 1e-5);
          },
          {4, 3, 5, 6}, dt);
      CHECK(same_bits(rm_c, rm_n));
      CHECK(same_bits(rv_c, rv_n));
    }
    check_same_as_nchw([](const Tensor& t) { return max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); }, {2, 3, 7, 6}, dt);
    check_same_as_nchw([](const Tensor& t) { return avg_pool2d(t, {2, 2}, {2, 2}, {0, 0}); }, {2, 3, 6, 6}, dt);
    check_same_as_nchw([](const Tensor& t) { return adaptive_avg_pool2d(t, {1, 1}); }, {2, 3, 5, 4}, dt);
    check_same_as_nchw([](const Tensor& t) { return adaptive_avg_pool2d(t, {2, 3}); }, {2, 3, 5, 7}, dt);
  }
}

TEST_CASE("channels_last: f64 gradchecks of conv2d, batch_norm2d, relu and add on channels-last inputs") {
  Conv2dOptions opt;
  opt.stride = {2, 1};
  opt.padding = {1, 1};
  opt.groups = 2;
  gradcheck([&](const std::vector<Tensor>& in) { return conv2d(cl(in[0]), in[1], in[2], opt); },
            {random_tensor({2, 4, 5, 4}, 61), random_tensor({4, 2, 3, 3}, 62), random_tensor({4}, 63)});
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return batch_norm2d(cl(in[0]), in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5);
      },
      {random_tensor({3, 2, 3, 4}, 64), random_tensor({2}, 65, 0.5, 1.5), random_tensor({2}, 66)});
  gradcheck([](const std::vector<Tensor>& in) { return relu(cl(in[0])); }, {random_tensor({2, 3, 3, 4}, 67, 0.1, 1)});
  gradcheck([](const std::vector<Tensor>& in) { return add(cl(in[0]), cl(in[1])); },
            {random_tensor({2, 3, 3, 4}, 68), random_tensor({2, 3, 3, 4}, 69)});
}

TEST_CASE("channels_last: resnet8 forward + backward equals the NCHW run bitwise; stages stay channels-last") {
  models::ModelConfig cfg;
  cfg.in_channels = 1;
  cfg.num_classes = 10;
  cfg.image_size = 16;
  auto run = [&](bool channels_last, models::Taps& taps) {
    auto model = models::create_model("resnet8", cfg);
    model->train();
    Tensor x = random_tensor({3, 1, 16, 16}, 71, -1, 1, DType::f32);
    Tensor logits = model->forward(channels_last ? cl(x) : x, &taps);
    sum(mul(logits, logits)).backward();
    return std::make_pair(model, logits);
  };
  models::Taps taps_n, taps_c;
  auto [mn, ln] = run(false, taps_n);
  auto [mc, lc] = run(true, taps_c);
  CHECK(same_bits(lc, ln));
  int channels_last_taps = 0;
  for (auto& [name, t] : taps_c) {
    INFO("tap " << name);
    CHECK(same_bits(t, taps_n.at(name)));
    if (t.dim() == 4 && t.size(2) * t.size(3) > 1) {
      CHECK(suggest_memory_format(t) == kCL);
      ++channels_last_taps;
    }
  }
  CHECK(channels_last_taps >= 3);
  for (auto& [pname, p] : mn->named_parameters()) {
    INFO("grad " << pname);
    Tensor g = mc->find_tensor(pname)->grad();
    REQUIRE(g.defined());
    CHECK(same_bits(g, p.grad()));
  }
}

TEST_SUITE("gpu") {
  TEST_CASE("cuda: channels-last conv2d (cuDNN NHWC) forward and backward against the CPU, f32 and bf16") {
    RETORT_REQUIRE_GPU();
    struct Case {
      Shape x, w;
      std::array<int64_t, 2> stride, padding;
      int64_t groups;
    };
    const std::vector<Case> cases = {
        {{4, 16, 12, 12}, {32, 16, 3, 3}, {1, 1}, {1, 1}, 1}, {{3, 8, 15, 13}, {16, 8, 3, 3}, {2, 2}, {1, 1}, 1},
        {{2, 16, 9, 9}, {16, 4, 3, 3}, {1, 1}, {1, 1}, 4},    {{2, 16, 8, 8}, {16, 1, 3, 3}, {2, 2}, {1, 1}, 16},
        {{2, 8, 10, 10}, {16, 8, 1, 1}, {2, 2}, {0, 0}, 1},
    };
    for (DType dt : {DType::f32, DType::bf16})
      for (const Case& c : cases) {
        INFO(shape_str(c.x) << " weight " << shape_str(c.w) << " " << dtype_name(dt));
        Conv2dOptions opt;
        opt.stride = c.stride;
        opt.padding = c.padding;
        opt.groups = c.groups;
        // Reference: the CPU in f32 on the values the device sees (bf16-rounded for bf16).
        Tensor x = random_tensor(c.x, 81, -1, 1, dt).to(DType::f32).requires_grad_(true);
        Tensor w = random_tensor(c.w, 82, -1, 1, dt).to(DType::f32).requires_grad_(true);
        Tensor b = random_tensor({c.w[0]}, 83, -1, 1, dt).to(DType::f32).requires_grad_(true);
        Tensor y = conv2d(x, w, b, opt);
        Tensor gy = random_tensor(y.shape(), 84, 0.5, 1.5, dt).to(DType::f32);
        sum(mul(y, gy)).backward();

        Tensor xd = cl(x.detach().to(dt).to(Device::cuda())).requires_grad_(true), seen;
        Tensor wd = w.detach().to(dt).to(Device::cuda()).requires_grad_(true);
        Tensor bd = b.detach().to(dt).to(Device::cuda()).requires_grad_(true);
        Tensor yd = conv2d(probe(xd, &seen), wd, bd, opt);
        CHECK(suggest_memory_format(yd) == kCL);
        sum(mul(yd, cl(gy.to(dt).to(Device::cuda())))).backward();
        CHECK(grad_is_channels_last(seen));
        CHECK(wd.grad().is_contiguous());
        // f32: cuDNN FMA math against im2col + GEMM; bf16: outputs rounded to 8 bits, sums of
        // up to 144 products (relative to 1 + |value|).
        const double tol = dt == DType::f32 ? 1e-4 : 3e-2;
        CHECK(max_rel_error(yd.to(DType::f32).to(Device::cpu()), y) < tol);
        CHECK(max_rel_error(xd.grad().to(DType::f32).to(Device::cpu()), x.grad()) < tol);
        CHECK(max_rel_error(wd.grad().to(DType::f32).to(Device::cpu()), w.grad(), 10.0) < tol);
        CHECK(max_rel_error(bd.grad().to(DType::f32).to(Device::cpu()), b.grad(), 10.0) < tol);
      }
  }

  TEST_CASE("cuda: channels-last batch_norm2d, relu and residual add keep the format and match the CPU") {
    RETORT_REQUIRE_GPU();
    Tensor x = cl(random_tensor({4, 8, 6, 6}, 91, -1, 1, DType::f32));
    Tensor r = cl(random_tensor({4, 8, 6, 6}, 92, -1, 1, DType::f32));
    Tensor wt = random_tensor({8}, 93, 0.5, 1.5, DType::f32), bs = random_tensor({8}, 94, -1, 1, DType::f32);
    auto block = [&](const Device& d) {
      return relu(add(batch_norm2d(x.to(d), wt.to(d), bs.to(d), Tensor(), Tensor(), true, 0.1, 1e-5), r.to(d)));
    };
    Tensor yd = block(Device::cuda());
    CHECK(suggest_memory_format(yd) == kCL);
    CHECK(max_rel_error(yd.to(Device::cpu()), block(Device::cpu())) < 1e-4);
  }
}
