// conv2d: hand-computed values (plain, strided+padded, dilated, grouped with bias), a naive
// reference on random odd shapes, the adjoint identity on a multi-chunk batch, shape errors,
// bf16 on the CPU; gradients for every option, bf16, transposed inputs and CUDA parity through
// the op cases (ops/op_case.h).
#include "helpers.h"
#include "ops/op_case.h"

using namespace retort;
using retort::test::check_close;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
// Direct-loop convolution in double: the reference for random cases.
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OC = w.size(0), KH = w.size(2), KW = w.size(3), cg = C / o.groups, ocg = OC / o.groups;
  const int64_t OH = (H + 2 * o.padding[0] - o.dilation[0] * (KH - 1) - 1) / o.stride[0] + 1;
  const int64_t OW = (W + 2 * o.padding[1] - o.dilation[1] * (KW - 1) - 1) / o.stride[1] + 1;
  auto xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(size_t(OC), 0.0);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double acc = bv[size_t(oc)];
          const int64_t grp = oc / ocg;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ki = 0; ki < KH; ++ki)
              for (int64_t kj = 0; kj < KW; ++kj) {
                const int64_t iy = oy * o.stride[0] - o.padding[0] + ki * o.dilation[0];
                const int64_t ix = ox * o.stride[1] - o.padding[1] + kj * o.dilation[1];
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += xv[size_t(((n * C + grp * cg + ci) * H + iy) * W + ix)] *
                       wv[size_t(((oc * cg + ci) * KH + ki) * KW + kj)];
              }
          out.push_back(acc);
        }
  return Tensor::from_vector(out, {N, OC, OH, OW}, DType::f64);
}

Conv2dOptions opts(std::array<int64_t, 2> stride, std::array<int64_t, 2> pad, std::array<int64_t, 2> dil,
                   int64_t groups) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

// One random case: input shape, weight shape, options.
struct ConvCase {
  Shape x, w;
  Conv2dOptions o;
  const char* name;
};
std::vector<ConvCase> option_cases() {
  return {{{2, 3, 7, 5}, {4, 3, 3, 3}, opts({1, 1}, {0, 0}, {1, 1}, 1), "plain"},
          {{2, 3, 7, 6}, {4, 3, 3, 3}, opts({2, 2}, {0, 0}, {1, 1}, 1), "stride 2"},
          {{2, 3, 5, 5}, {2, 3, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 1), "padding 1"},
          {{1, 2, 7, 7}, {3, 2, 3, 3}, opts({1, 1}, {0, 0}, {2, 2}, 1), "dilation 2"},
          {{2, 4, 5, 6}, {6, 2, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 2), "groups 2"},
          {{2, 3, 6, 5}, {3, 1, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 3), "depthwise"},
          {{1, 3, 7, 6}, {6, 1, 3, 3}, opts({2, 1}, {1, 0}, {1, 1}, 3), "depthwise multiplier 2, stride (2, 1)"},
          {{2, 3, 7, 5}, {2, 3, 2, 3}, opts({2, 1}, {1, 2}, {2, 1}, 1), "asymmetric kernel/stride/pad/dilation"},
          {{1, 3, 5, 5}, {5, 3, 1, 1}, opts({1, 1}, {0, 0}, {1, 1}, 1), "1x1"},
          {{2, 4, 7, 7}, {6, 4, 1, 1}, opts({2, 2}, {0, 0}, {1, 1}, 1), "1x1 stride 2 (downsample shortcut)"},
          {{1, 2, 9, 8}, {2, 2, 3, 3}, opts({3, 2}, {1, 1}, {1, 2}, 1), "stride 3, dilation (1, 2)"}};
}
}  // namespace

TEST_CASE("conv2d: 3x3 kernel on a 4x4 input, hand-computed") {
  Tensor x = Tensor::arange(16, DType::f32).reshape({1, 1, 4, 4});
  Tensor w = Tensor::from_vector({1, 0, -1, 2, 1, 0, 0, -1, 1}, {1, 1, 3, 3});
  check_close(conv2d(x, w), {12, 15, 24, 27});
  check_close(conv2d(x, w, Tensor::from_vector({0.5}, {1})), {12.5, 15.5, 24.5, 27.5});
  Tensor ys = conv2d(x, w, Tensor(), opts({2, 2}, {1, 1}, {1, 1}, 1));
  CHECK(ys.shape() == Shape{1, 1, 2, 2});
  check_close(ys, {1, 5, 4, 27});
  Tensor yd = conv2d(x, w, Tensor(), opts({1, 1}, {1, 1}, {2, 2}, 1));
  CHECK(yd.shape() == Shape{1, 1, 2, 2});
  check_close(yd, {7, 0, 6, 26});
}

TEST_CASE("conv2d: groups 2 with bias, hand-computed") {
  Tensor x = Tensor::arange(18, DType::f64).reshape({1, 2, 3, 3});
  Tensor w = Tensor::from_vector({1, 2, 3, 4, -1, 0, 0, 1}, {2, 1, 2, 2}, DType::f64);
  Tensor b = Tensor::from_vector({0.5, -0.5}, {2}, DType::f64);
  Tensor y = conv2d(x, w, b, opts({1, 1}, {0, 0}, {1, 1}, 2));
  CHECK(y.shape() == Shape{1, 2, 2, 2});
  check_close(y, {27.5, 37.5, 57.5, 67.5, 3.5, 3.5, 3.5, 3.5});
}

TEST_CASE("conv2d: matches a direct-loop reference for every option, f32 and f64") {
  uint64_t seed = 300;
  for (const auto& c : option_cases()) {
    INFO(c.name);
    Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++), b = random_tensor({c.w[0]}, seed++);
    Tensor ref = naive_conv(x, w, b, c.o);
    CHECK(max_rel_error(conv2d(x, w, b, c.o), ref) < 1e-12);
    CHECK(max_rel_error(conv2d(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), c.o), ref) < 1e-5);
  }
}

TEST_CASE("conv2d: multi-chunk batches and single samples agree with the reference and the adjoint identity") {
  // 16 channels x 3x3 x 64x64 pixels in f64 is ~4.7 MB of columns per sample: one sample per chunk.
  Tensor x = random_tensor({3, 16, 64, 64}, 401), w = random_tensor({4, 16, 3, 3}, 402);
  Conv2dOptions o = opts({1, 1}, {1, 1}, {1, 1}, 1);
  Tensor y = conv2d(x, w, Tensor(), o);
  CHECK(max_rel_error(y, naive_conv(x, w, Tensor(), o)) < 1e-12);
  // For the linear map y = conv(x, w): <gy, y> = <gx, x> = <gw, w>.
  Tensor xg = x.clone().requires_grad_(), wg = w.clone().requires_grad_();
  Tensor gy = random_tensor(y.shape(), 403);
  sum(mul(conv2d(xg, wg, Tensor(), o), gy)).backward();
  const double lhs = sum(mul(gy, y)).item();
  CHECK(sum(mul(xg.grad(), x)).item() == doctest::Approx(lhs).epsilon(1e-10));
  CHECK(sum(mul(wg.grad(), w)).item() == doctest::Approx(lhs).epsilon(1e-10));

  // A single sample: one chunk, whose GEMMs are split over the threads instead.
  Tensor x1 = random_tensor({1, 16, 32, 32}, 404), w1 = random_tensor({8, 16, 3, 3}, 405);
  CHECK(max_rel_error(conv2d(x1, w1, Tensor(), o), naive_conv(x1, w1, Tensor(), o)) < 1e-12);
  Tensor x1g = x1.clone().requires_grad_(), w1g = w1.clone().requires_grad_();
  Tensor y1 = conv2d(x1g, w1g, Tensor(), o);
  Tensor gy1 = random_tensor(y1.shape(), 406);
  sum(mul(y1, gy1)).backward();
  const double lhs1 = sum(mul(gy1, y1.detach())).item();
  CHECK(sum(mul(x1g.grad(), x1)).item() == doctest::Approx(lhs1).epsilon(1e-10));
  CHECK(sum(mul(w1g.grad(), w1)).item() == doctest::Approx(lhs1).epsilon(1e-10));
}

namespace {
test::OpCase conv_case(const ConvCase& cc, bool bias = true) {
  test::OpCase c;
  c.op = "conv2d";
  c.name = std::string("conv2d ") + cc.name + (bias ? "" : ", no bias");
  const Conv2dOptions o = cc.o;
  c.fn = [o, bias](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], bias ? in[2] : Tensor(), o); };
  c.shapes = bias ? std::vector<Shape>{cc.x, cc.w, {cc.w[0]}} : std::vector<Shape>{cc.x, cc.w};
  c.cuda_bf16_gradients = false;  // bf16 gradient sums are too coarse for the bf16 rule on CUDA
  return c;
}
std::vector<test::OpCase> conv_cases() {
  std::vector<test::OpCase> cases;
  for (const auto& cc : option_cases()) cases.push_back(conv_case(cc));
  cases.push_back(conv_case({{2, 3, 5, 7}, {2, 3, 3, 2}, opts({1, 1}, {0, 0}, {1, 1}, 1), "plain"}, false));
  test::OpCase wider = conv_case({{5, 16, 29, 31}, {32, 16, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 1), "wider"});
  test::OpCase depthwise = conv_case({{3, 32, 15, 17}, {32, 1, 3, 3}, opts({2, 2}, {1, 1}, {1, 1}, 32), "depthwise 32"});
  for (test::OpCase* big : {&wider, &depthwise}) {  // CUDA sizes: too large for finite differences
    big->gpu_shapes = {big->shapes};
    big->shapes = {};
    big->gradcheck = false;
    big->bf16 = false;
    cases.push_back(*big);
  }
  return cases;
}
const test::OpCases kConvCases("conv", conv_cases());
}  // namespace

TEST_CASE("gradcheck: conv2d for every option (stride, padding, dilation, groups, depthwise)") {
  test::check_gradients(kConvCases);
}
TEST_CASE("op cases: conv2d in bf16 and on transposed inputs") {
  test::check_bf16(kConvCases);
  test::check_transposed(kConvCases);
}

TEST_CASE("conv2d: bf16 on the CPU goes through f32") {
  Tensor x = random_tensor({2, 3, 6, 5}, 601, -1, 1, DType::f32), w = random_tensor({4, 3, 3, 3}, 602, -1, 1, DType::f32);
  Tensor xb = x.to(DType::bf16), wb = w.to(DType::bf16);
  Tensor y = conv2d(xb, wb, Tensor(), opts({1, 1}, {1, 1}, {1, 1}, 1));
  CHECK(y.dtype() == DType::bf16);
  CHECK(max_rel_error(y, conv2d(xb.to(DType::f32), wb.to(DType::f32), Tensor(), opts({1, 1}, {1, 1}, {1, 1}, 1))) <
        1e-2);
}

TEST_CASE("conv2d: shape errors name the op, the shapes and the operand") {
  Tensor x = Tensor::ones({2, 3, 8, 8});
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 2, 3, 3})),
                       doctest::Contains("conv2d: channel mismatch: input (x) [2, 3, 8, 8] has 3 channels but weight "
                                         "[4, 2, 3, 3] with groups = 1 expects 2"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::ones({3, 8, 8}), Tensor::ones({4, 3, 3, 3})),
                       doctest::Contains("conv2d: input (x) must be 4-D"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}), Tensor::ones({5})),
                       doctest::Contains("conv2d: bias must be [4]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}), Tensor(), opts({1, 1}, {0, 0}, {1, 1}, 2)),
                       doctest::Contains("must both divide by groups = 2"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 9, 9})), doctest::Contains("is too small for kernel 9x9"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::ones({4, 3, 3, 3}), Tensor(), opts({0, 1}, {0, 0}, {1, 1}, 1)),
                       doctest::Contains("conv2d: stride must be >= 1"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: conv2d forward and backward") {
  RETORT_REQUIRE_GPU();
  test::check_cuda_parity(kConvCases);
}
}  // TEST_SUITE
