// Core tensor tests: views share storage, copies, casts, autograd of add/mul/sum and views.
#include <algorithm>
#include "helpers.h"
#include "kernels/cuda/device_binding.h"

using namespace retort;
using retort::test::check_close;
using retort::test::gradcheck;
using retort::test::random_tensor;

TEST_CASE("views share storage and index correctly") {
  Tensor a = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = a.transpose(0, 1);
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.storage() == a.storage());
  check_close(t.contiguous(), {0, 3, 1, 4, 2, 5});
  check_close(a.slice(1, 1, 3), {1, 2, 4, 5});
  check_close(a.slice(1, 0, 3, 2), {0, 2, 3, 5});
  check_close(a.select(0, 1), {3, 4, 5});
  check_close(Tensor::from_vector({7, 8}, {2, 1}).expand({2, 3}), {7, 7, 7, 8, 8, 8});
  check_close(a.reshape({3, 2}), {0, 1, 2, 3, 4, 5});
  check_close(t.reshape({6}), {0, 3, 1, 4, 2, 5});
  CHECK_THROWS_WITH_AS(t.view({6}), doctest::Contains("cannot be viewed"), Error);
}

TEST_CASE("casts round-trip and bf16 rounds to nearest even") {
  Tensor a = Tensor::from_vector({1.0, -2.5, 3.140625, 1e-3}, {4}, DType::f64);
  check_close(a.to(DType::f32).to(DType::f64), {1.0, -2.5, 3.140625, 1e-3}, 1e-7);
  Tensor b = a.to(DType::bf16).to(DType::f64);
  check_close(b, {1.0, -2.5, 3.140625, 0.00099945068359375}, 1e-9);
  check_close(Tensor::from_vector({3.7, -1.2}, {2}).to(DType::i64), {3, -1});
}

TEST_CASE("full: every dtype, rounded like a cast, on short and long (threaded) tensors") {
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(300001)}) {
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8}) {
      INFO(n, " elements of ", dtype_name(dt));
      const double v = dt == DType::u8 ? 200.0 : dt == DType::i64 ? -7.0 : 1.0 / 3.0;
      const double want = Tensor::from_vector({v}, {1}, dt).to_vector()[0];  // the cast's rounding
      CHECK(want != 0.0);
      Tensor t = Tensor::full({n}, v, dt);
      auto got = t.to_vector();
      CHECK(got.front() == want);
      CHECK(got.back() == want);
      CHECK(std::count(got.begin(), got.end(), want) == n);
    }
  }
  CHECK(Tensor::zeros({3, 4}, DType::bf16).to_vector() == std::vector<double>(12, 0.0));
}

TEST_CASE("add/mul/sum forward with broadcasting") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector({10, 20, 30}, {3});
  check_close(add(a, b), {11, 22, 33, 14, 25, 36});
  check_close(mul(a, Tensor::from_vector({2, 3}, {2, 1})), {2, 4, 6, 12, 15, 18});
  check_close(sum(a), {21});
  check_close(sum(a, {0}), {5, 7, 9});
  check_close(sum(a, {1}, true), {6, 15});
  CHECK(sum(a, {1}, true).shape() == Shape{2, 1});
  CHECK_THROWS_WITH_AS(add(a, Tensor::ones({2})), doctest::Contains("add: shapes [2, 3] (first operand) and [2]"), Error);
  CHECK_THROWS_WITH_AS(add(a, Tensor::ones({3}, DType::f64)), doctest::Contains("dtype mismatch"), Error);
}

TEST_CASE("gradcheck: add, sub, mul, div with broadcasting") {
  auto x = random_tensor({2, 3}, 1), y = random_tensor({3}, 2, 0.5, 2.0);
  gradcheck([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {x, y});
  gradcheck([](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, {x, y});
  gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, {x, y});
  gradcheck([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {x, y});
}

TEST_CASE("gradcheck: views and sum") {
  auto x = random_tensor({2, 3, 4}, 3);
  gradcheck([](const std::vector<Tensor>& in) { return in[0].permute({2, 0, 1}).reshape({4, 6}); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return in[0].slice(2, 1, 4, 2); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return in[0].select(1, 2); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return sum(in[0], {0, 2}, true); }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return in[0].slice(0, 0, 1).expand({3, 3, 4}); }, {x});
}

TEST_CASE("gradcheck: several views of one intermediate add their gradients in place") {
  // q, k, v cut from one tensor (select), overlapping and strided slices, and the tensor itself
  // used directly too: the views after the first add into its pending gradient
  // (Node::backward_into); every path must agree with finite differences.
  auto x = random_tensor({3, 4, 5}, 11);
  auto w = random_tensor({4, 5}, 12);
  gradcheck([w](const std::vector<Tensor>& in) {
    Tensor y = mul(in[0], in[0]);  // an intermediate with a pending gradient
    Tensor q = y.select(0, 0), k = y.select(0, 1), v = y.select(0, 2);
    return add(add(mul(q, w), mul(k, k)), mul(v, q));
  }, {x});
  gradcheck([](const std::vector<Tensor>& in) {
    Tensor y = mul(in[0], 2.0);
    Tensor a = y.slice(2, 0, 3), b = y.slice(2, 2, 5), c = y.slice(2, 0, 5, 2);  // overlap, stride 2
    return add(add(sum(mul(a, a)), sum(mul(b, b))), add(sum(mul(c, c)), sum(mul(y, y))));
  }, {x});
}

TEST_CASE("autograd: accumulation, no_grad, detach, graph freed after backward") {
  Tensor w = Tensor::from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  Tensor y = sum(mul(w, w));
  y.backward();
  check_close(w.grad(), {2, 4, 6});
  sum(w).backward();  // accumulates
  check_close(w.grad(), {3, 5, 7});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  {
    NoGradGuard ng;
    CHECK_FALSE(mul(w, w).requires_grad());
  }
  CHECK_FALSE(w.detach().requires_grad());
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("second time"), Error);
}

TEST_CASE("device auto falls back to CPU and cuda without a GPU is a clear error") {
  if (cuda_available()) {
    CHECK(resolve_device("auto").is_cuda());
    return;
  }
  CHECK(resolve_device("auto").is_cpu());
  CHECK_THROWS_WITH_AS(resolve_device("cuda"), doctest::Contains("CUDA is not usable here"), Error);
  CHECK_THROWS_AS(Tensor::zeros({2}, DType::f32, Device::cuda()), Error);
  CHECK_THROWS_WITH_AS(resolve_device("tpu"), doctest::Contains("unknown device"), Error);
}

TEST_CASE("a process computes on one GPU: the first named binds it, another one is an error") {
  cuda::DeviceBinding binding;
  CHECK(binding.bound() == -1);
  CHECK(binding.bind(1));        // first: bound, the caller makes it current
  CHECK_FALSE(binding.bind(1));  // again: nothing to do
  CHECK(binding.bound() == 1);
  CHECK_THROWS_WITH_AS(binding.bind(0),
                       doctest::Contains("cuda:0 was asked for, but this process already computes on cuda:1"), Error);
  CHECK(binding.bound() == 1);
  CHECK_THROWS_WITH_AS(cuda::DeviceBinding().bind(-2), doctest::Contains("cuda:-2 is not a device index"), Error);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda: cuda:N names a real GPU, and the process computes there") {
  RETORT_REQUIRE_GPU();
  const int n = cuda_device_count();
  const std::string visible = fmt::format("does not exist: {} GPU(s) visible", n);
  CHECK_THROWS_WITH_AS(resolve_device(fmt::format("cuda:{}", n)), doctest::Contains(visible.c_str()), Error);
  const Device d = resolve_device("cuda:0");
  CHECK(d == Device::cuda(0));
  Tensor t = Tensor::ones({3}).to(d);
  CHECK(t.device() == d);
  CHECK(t.to(Device::cpu()).to_vector() == std::vector<double>{1, 1, 1});
}
}

TEST_CASE("memory statistics track current and peak bytes") {
  auto before = memory_stats(Device::cpu());
  {
    Tensor big = Tensor::zeros({1024, 256});
    auto during = memory_stats(Device::cpu());
    CHECK(during.current_bytes >= before.current_bytes + 1024 * 256 * 4);
    CHECK(during.peak_bytes >= during.current_bytes);
  }
  CHECK(memory_stats(Device::cpu()).current_bytes == before.current_bytes);
}

TEST_CASE("empty: a tensor too large to allocate names its shape and bytes, not std::bad_alloc") {
  // 4 PiB: no machine has it, and the allocator says so (or ASan's allocator_may_return_null does).
  try {
    Tensor::empty({1 << 20, 1 << 20, 1 << 10}, DType::f32);
    FAIL("allocated 4 PiB");
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("cannot allocate a f32 tensor of shape [1048576, 1048576, 1024] (4503599627370496 bytes) on cpu") !=
          std::string::npos);
  }
  // A shape whose byte count overflows 64 bits is refused before any arithmetic wraps.
  try {
    Tensor::empty({int64_t(1) << 40, int64_t(1) << 40}, DType::f64);
    FAIL("allocated an overflowing shape");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("its size in bytes overflows") != std::string::npos);
  }
}
