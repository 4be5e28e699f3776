// The multi-tensor sum of squares behind the global gradient norm (kernels/optim.h's
// sum_squares_multi): against a long-double sum of the same squares, in f32, f64 and bf16, over
// tensors that cross its runs; the same bits on one thread and on several; NaN and infinity
// come through; no elements give 0; and, on a GPU, the CUDA kernel (several launches) against
// the CPU reference.
#include <doctest/doctest.h>
#include <omp.h>
#include <cmath>
#include <cstring>
#include <limits>
#include "engine/kernel_call.h"
#include "helpers.h"
#include "kernels/optim.h"

using namespace retort;
using retort::test::random_tensor;

namespace {
// Sizes below, at and across kSumSquaresRun, and many small ones (the CUDA tables hold 191).
std::vector<Shape> sizes_across_runs() {
  std::vector<Shape> shapes = {{1}, {kSumSquaresRun - 1}, {kSumSquaresRun}, {kSumSquaresRun * 3 + 7}, {5, 97}};
  for (int64_t i = 0; i < 200; ++i) shapes.push_back({1 + (53 * i) % 257});
  return shapes;
}

std::vector<Tensor> random_list(const std::vector<Shape>& shapes, DType dtype, uint64_t seed,
                                Device device = Device::cpu()) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < shapes.size(); ++i) out.push_back(random_tensor(shapes[i], seed + i, -3, 3, dtype, device));
  return out;
}

// The kernel's sum over `tensors` (one dtype, one device), read back.
double sum_squares(const std::vector<Tensor>& tensors) {
  const Device device = tensors.empty() ? Device::cpu() : tensors.front().device();
  const DType dtype = tensors.empty() ? DType::f32 : tensors.front().dtype();
  std::vector<DenseInput> inputs;
  for (const Tensor& t : tensors) inputs.push_back({t.raw_data(), t.numel()});
  Tensor out = Tensor::full({}, -1.0, DType::f64, device);  // overwritten
  RETORT_KERNEL(device, sum_squares_multi, dtype, inputs.data(), int64_t(inputs.size()),
                static_cast<double*>(out.raw_data()));
  return out.item();
}

long double reference(const std::vector<Tensor>& tensors) {
  long double s = 0;
  for (const Tensor& t : tensors)
    for (const double v : t.to_vector()) s += (long double)v * v;
  return s;
}

uint64_t bits_of(double v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
}  // namespace

TEST_CASE("sum of squares: every element squared and added in double, in every dtype") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    INFO(dtype_name(dt));
    const std::vector<Tensor> list = random_list(sizes_across_runs(), dt, 10);
    const long double want = reference(list);
    REQUIRE(want > 1000);
    CHECK(std::abs((long double)sum_squares(list) - want) <= 1e-14L * want);
  }
}

TEST_CASE("sum of squares: the same bits on one thread as on several") {
  const std::vector<Tensor> list = random_list(sizes_across_runs(), DType::f32, 20);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = sum_squares(list);
  omp_set_num_threads(std::max(threads, 2));
  const double several = sum_squares(list);
  omp_set_num_threads(threads);
  CHECK(bits_of(one) == bits_of(several));
}

TEST_CASE("sum of squares: NaN and infinity come through, large finite values do not overflow") {
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), inf, -inf}) {
    INFO("bad " << bad);
    std::vector<Tensor> list = random_list(sizes_across_runs(), DType::f32, 30);
    std::vector<double> v = list[3].to_vector();
    v[kSumSquaresRun + 2] = bad;  // in the second run of a tensor of four
    list[3] = Tensor::from_vector(v, list[3].shape(), DType::f32);
    const double got = sum_squares(list);
    if (std::isnan(bad)) CHECK(std::isnan(got));
    else CHECK(got == inf);
  }
  // f32's largest value squared is far beyond f32 but not beyond double.
  const Tensor big = Tensor::full({1000}, double(std::numeric_limits<float>::max()), DType::f32);
  const double got = sum_squares({big});
  CHECK(std::isfinite(got));
  CHECK(std::abs(got / (1000.0 * double(std::numeric_limits<float>::max()) * std::numeric_limits<float>::max()) - 1) <
        1e-12);
}

TEST_CASE("sum of squares: no elements give 0, empty tensors are skipped") {
  CHECK(sum_squares({}) == 0.0);
  CHECK(sum_squares({Tensor::zeros({0}), Tensor::zeros({0, 3})}) == 0.0);
  CHECK(sum_squares({Tensor::zeros({0}), Tensor::full({2}, 3.0, DType::f32)}) == 18.0);
}

TEST_SUITE("gpu") {
TEST_CASE("cuda sum of squares: against the CPU reference, over several launches") {
  RETORT_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    INFO(dtype_name(dt));
    std::vector<Shape> shapes = sizes_across_runs();
    for (int64_t i = 0; i < 200; ++i) shapes.push_back({1 + (29 * i) % 401});  // over two tables of 191
    const std::vector<Tensor> cpu = random_list(shapes, dt, 40);
    std::vector<Tensor> gpu;
    for (const Tensor& t : cpu) gpu.push_back(t.to(Device::cuda()));
    const double want = sum_squares(cpu), got = sum_squares(gpu);
    CHECK(std::abs(got - want) <= 1e-13 * want);
    CHECK(bits_of(sum_squares(gpu)) == bits_of(got));  // deterministic
    std::vector<double> v = cpu[4].to_vector();
    v[100] = std::numeric_limits<double>::quiet_NaN();
    gpu[4] = Tensor::from_vector(v, cpu[4].shape(), dt).to(Device::cuda());
    CHECK(std::isnan(sum_squares(gpu)));
  }
  CHECK(sum_squares({Tensor::zeros({0}, DType::f32, Device::cuda())}) == 0.0);
}
}
