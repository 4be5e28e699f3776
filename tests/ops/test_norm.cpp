// batch_norm2d and layer_norm: hand-computed values, running statistics, f64 gradchecks,
// shape errors, and CUDA parity (forward, running stats and every gradient) against the CPU.
#include "helpers.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::max_rel_error;
using retort::test::random_tensor;

namespace {
// x [2, 2, 1, 2] (N, C, H, W): channel 0 holds {1, 2, 3, 6}, channel 1 holds {3, 5, -1, 1}.
Tensor tiny_bn_input() { return Tensor::from_vector({1, 2, 3, 5, 3, 6, -1, 1}, {2, 2, 1, 2}, DType::f64); }
}  // namespace

TEST_CASE("batch_norm2d: training forward, running stats and backward by hand") {
  Tensor x = tiny_bn_input().requires_grad_();
  Tensor w = Tensor::from_vector({2, 0.5}, {2}, DType::f64).requires_grad_();
  Tensor b = Tensor::from_vector({0.1, -1}, {2}, DType::f64).requires_grad_();
  Tensor rm = Tensor::zeros({2}, DType::f32), rv = Tensor::ones({2}, DType::f32);
  Tensor y = batch_norm2d(x, w, b, rm, rv, true, 0.1, 1e-5);
  // channel 0: mean 3, biased var 3.5; channel 1: mean 2, biased var 5.
  check_close(y, {-2.0380868808917470, -0.9690434404458735, -0.7763934258564833, -0.3291802775694501, 0.1,
                  3.3071303213376210, -1.6708197224305499, -1.2236065741435167},
              1e-12);
  // running = 0.9 * running + 0.1 * batch (unbiased var: 14/3 and 20/3).
  check_close(rm, {0.3, 0.2}, 1e-7);
  check_close(rv, {0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 20.0 / 3.0}, 1e-7);
  Tensor g = Tensor::from_vector({1, -2, 0.5, 3, 2, 1, -1, 4}, {2, 2, 1, 2}, DType::f64);
  y.backward(g);
  check_close(x.grad(), {0.9926818856706956, -2.443528518390804, -0.3465899998572429, 0.022361227609975335,
                         1.6035651606688104, -0.1527185279487016, -0.30186944528937115, 0.6260982175366387},
              1e-10);
  check_close(w.grad(), {1.6035651606688104, 3.801311760439783}, 1e-10);
  check_close(b.grad(), {2, 6.5}, 1e-12);
}

TEST_CASE("batch_norm2d: eval mode uses the running stats and leaves them alone") {
  Tensor x = tiny_bn_input().requires_grad_();
  Tensor w = Tensor::from_vector({2, 0.5}, {2}, DType::f64).requires_grad_();
  Tensor b = Tensor::from_vector({0.1, -1}, {2}, DType::f64);
  Tensor rm = Tensor::from_vector({1, -1}, {2}, DType::f64), rv = Tensor::from_vector({4, 0.25}, {2}, DType::f64);
  Tensor y = batch_norm2d(x, w, b, rm, rv, false, 0.1, 0.0);
  // y = (x - rm) / sqrt(rv) * w + b
  check_close(y, {0.1, 1.1, 3, 5, 2.1, 5.1, -1, 1}, 1e-12);
  check_close(rm, {1, -1}, 0);
  check_close(rv, {4, 0.25}, 0);
  Tensor g = Tensor::from_vector({1, -2, 0.5, 3, 2, 1, -1, 4}, {2, 2, 1, 2}, DType::f64);
  y.backward(g);
  check_close(x.grad(), {1, -2, 0.5, 3, 2, 1, -1, 4}, 1e-12);  // g * w / sqrt(rv): w/sqrt(rv) = 1 for both
  // dw = sum(g * xhat): channel 0 xhat = {0, 0.5, 1, 2.5}, channel 1 xhat = {8, 12, 0, 4}
  check_close(w.grad(), {1 * 0 - 2 * 0.5 + 2 * 1 + 1 * 2.5, 0.5 * 8 + 3 * 12 - 1 * 0 + 4 * 4}, 1e-12);
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("batch_norm2d: affine=false and no running stats normalise with batch stats") {
  Tensor y = batch_norm2d(tiny_bn_input(), Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 0.0);
  const double s0 = std::sqrt(3.5), s1 = std::sqrt(5.0);
  check_close(y, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-12);
}

TEST_CASE("gradcheck: batch_norm2d training (x, weight, bias) and eval") {
  auto x = random_tensor({3, 3, 2, 3}, 11), w = random_tensor({3}, 12, 0.5, 1.5), b = random_tensor({3}, 13);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor rm = Tensor::zeros({3}, DType::f64), rv = Tensor::ones({3}, DType::f64);
        return batch_norm2d(in[0], in[1], in[2], rm, rv, true, 0.1, 1e-5);
      },
      {x, w, b});
  gradcheck([](const std::vector<Tensor>& in) { return batch_norm2d(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
            {random_tensor({5, 2, 3}, 14)});
  Tensor rm = random_tensor({3}, 15), rv = random_tensor({3}, 16, 0.5, 2.0);
  gradcheck([&](const std::vector<Tensor>& in) { return batch_norm2d(in[0], in[1], in[2], rm, rv, false); },
            {x, w, b});
}

TEST_CASE("batch_norm2d: bf16 and f32 inputs with f32 running stats") {
  Tensor x = tiny_bn_input();
  Tensor rm = Tensor::zeros({2}), rv = Tensor::ones({2});
  Tensor y = batch_norm2d(x.to(DType::f32), Tensor(), Tensor(), rm, rv, true);
  const double s0 = std::sqrt(3.5 + 1e-5), s1 = std::sqrt(5.0 + 1e-5);
  check_close(y, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-6);
  check_close(rm, {0.3, 0.2}, 1e-7);
  Tensor yb = batch_norm2d(x.to(DType::bf16), Tensor(), Tensor(), Tensor(), Tensor(), true);
  CHECK(yb.dtype() == DType::bf16);
  check_close(yb, {-2 / s0, -1 / s0, 1 / s1, 3 / s1, 0, 3 / s0, -3 / s1, -1 / s1}, 1e-2);
}

TEST_CASE("batch_norm2d: shape errors name the operand") {
  Tensor x = Tensor::ones({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(batch_norm2d(Tensor::ones({6}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("batch_norm2d: input must be [N, C, H, W]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor::ones({4}), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("weight must have shape [3] to match input [2, 3, 4, 4], got [4]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor::ones({3}, DType::f64), Tensor(), Tensor(), true),
                       doctest::Contains("bias has dtype f64"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor(), Tensor::zeros({2}), Tensor::ones({2}), false),
                       doctest::Contains("running_mean must have shape [3]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(x, Tensor(), Tensor(), Tensor::zeros({3}), Tensor(), false),
                       doctest::Contains("both"), Error);
  CHECK_THROWS_WITH_AS(batch_norm2d(Tensor::ones({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       doctest::Contains("more than one value per channel"), Error);
}

TEST_CASE("layer_norm: 2x3 by hand, with and without affine") {
  Tensor x = Tensor::from_vector({1, 2, 3, 2, -1, 5}, {2, 3}, DType::f64);
  Tensor w = Tensor::from_vector({1, 2, -1}, {3}, DType::f64), b = Tensor::from_vector({0, 0.5, 1}, {3}, DType::f64);
  // row 0: mean 2, var 2/3; row 1: mean 2, var 6 (eps 1e-5)
  check_close(layer_norm(x, w, b), {-1.2247356859083902, 0.5, -0.22473568590839021, 0.0, -1.9494877015442773,
                                    -0.22474385077213865},
              1e-12);
  check_close(layer_norm(x, Tensor(), Tensor(), 0.0),
              {-std::sqrt(1.5), 0, std::sqrt(1.5), 0, -3 / std::sqrt(6.0), 3 / std::sqrt(6.0)}, 1e-12);
  check_close(layer_norm(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32)),
              {-1.2247356859083902, 0.5, -0.22473568590839021, 0.0, -1.9494877015442773, -0.22474385077213865}, 1e-6);
}

TEST_CASE("gradcheck: layer_norm") {
  auto x = random_tensor({5, 7}, 21), w = random_tensor({7}, 22, 0.5, 1.5), b = random_tensor({7}, 23);
  gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b});
  gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], Tensor(), Tensor()); },
            {random_tensor({2, 3, 5}, 24)});
  // a non-contiguous input
  gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0].transpose(0, 1), in[1], Tensor()); },
            {random_tensor({5, 3}, 25), random_tensor({5}, 26)});
}

TEST_CASE("layer_norm: shape errors name the operand") {
  Tensor x = Tensor::ones({4, 6});
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor::ones({4}), Tensor()),
                       doctest::Contains("layer_norm: weight must have shape [6] to match input [4, 6], got [4]"), Error);
  CHECK_THROWS_WITH_AS(layer_norm(x, Tensor(), Tensor::ones({6, 1})), doctest::Contains("layer_norm: bias must have shape [6]"),
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(Tensor::ones({4, 0}), Tensor(), Tensor()), doctest::Contains("non-empty last dim"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: batch_norm2d") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  const std::vector<Shape> shapes = {{2, 3, 5, 7}, {8, 16, 9, 9}, {3, 5, 1, 1}, {64, 32, 8, 8}, {7, 4, 33, 17}};
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    const double tol = dt == DType::bf16 ? 1e-2 : 1e-5;
    for (const Shape& s : shapes)
      for (bool training : {true, false}) {
        INFO("shape " << shape_str(s) << " dtype " << dtype_name(dt) << " training " << training);
        const int64_t C = s[1];
        Tensor x = random_tensor(s, 31, -2, 3, dt), g = random_tensor(s, 32, -1, 1, dt);
        Tensor w = random_tensor({C}, 33, 0.5, 1.5, dt), b = random_tensor({C}, 34, -1, 1, dt);
        Tensor rm = random_tensor({C}, 35, -1, 1, DType::f32), rv = random_tensor({C}, 36, 0.5, 2, DType::f32);
        std::vector<Tensor> cpu_in = {x, w, b}, gpu_in;
        for (auto& t : cpu_in) t.requires_grad_();
        for (auto& t : cpu_in) gpu_in.push_back(t.detach().to(gpu).requires_grad_());
        Tensor rm_c = rm.clone(), rv_c = rv.clone(), rm_g = rm.to(gpu), rv_g = rv.to(gpu);
        Tensor yc = batch_norm2d(cpu_in[0], cpu_in[1], cpu_in[2], rm_c, rv_c, training);
        Tensor yg = batch_norm2d(gpu_in[0], gpu_in[1], gpu_in[2], rm_g, rv_g, training);
        CHECK(max_rel_error(yg.to(Device::cpu()), yc) <= tol);
        CHECK(max_rel_error(rm_g.to(Device::cpu()), rm_c) <= 1e-5);
        CHECK(max_rel_error(rv_g.to(Device::cpu()), rv_c) <= 1e-5);
        yc.backward(g);
        yg.backward(g.to(gpu));
        for (size_t i = 0; i < 3; ++i) {
          INFO("gradient of input " << i);
          // bf16 weight/bias gradients are sums over many bf16-rounded terms: compare relative to their scale.
          CHECK(max_rel_error(gpu_in[i].grad().to(Device::cpu()), cpu_in[i].grad()) <= tol);
        }
      }
  }
}

TEST_CASE("cuda parity: layer_norm") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  const std::vector<Shape> shapes = {{5, 7}, {2, 197, 384}, {3, 17, 64}, {1000, 33}, {4, 1025}, {3, 4096}};
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    const double tol = dt == DType::bf16 ? 1e-2 : 1e-5;
    for (const Shape& s : shapes)
      for (bool affine : {true, false}) {
        INFO("shape " << shape_str(s) << " dtype " << dtype_name(dt) << " affine " << affine);
        const int64_t C = s.back();
        Tensor x = random_tensor(s, 41, -2, 3, dt), g = random_tensor(s, 42, -1, 1, dt);
        std::vector<Tensor> cpu_in, gpu_in;
        cpu_in.push_back(x);
        if (affine) {
          cpu_in.push_back(random_tensor({C}, 43, 0.5, 1.5, dt));
          cpu_in.push_back(random_tensor({C}, 44, -1, 1, dt));
        }
        for (auto& t : cpu_in) t.requires_grad_();
        for (auto& t : cpu_in) gpu_in.push_back(t.detach().to(gpu).requires_grad_());
        auto run = [&](const std::vector<Tensor>& in) {
          return affine ? layer_norm(in[0], in[1], in[2]) : layer_norm(in[0], Tensor(), Tensor());
        };
        Tensor yc = run(cpu_in), yg = run(gpu_in);
        CHECK(max_rel_error(yg.to(Device::cpu()), yc) <= tol);
        yc.backward(g);
        yg.backward(g.to(gpu));
        for (size_t i = 0; i < cpu_in.size(); ++i) {
          INFO("gradient of input " << i);
          CHECK(max_rel_error(gpu_in[i].grad().to(Device::cpu()), cpu_in[i].grad()) <= tol);
        }
      }
  }
}
}  // TEST_SUITE("gpu")
