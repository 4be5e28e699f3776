// Kernel family "copy": strided copies and casts (Tensor::to, contiguous on views), fills and
// in-place scalar adds (Tensor::add_), on the CPU between every dtype pair through strided views,
// and CUDA against the CPU bit for bit (dedicated tests: copies are exact, so they are compared
// exactly, not by tolerance).
#include "helpers.h"
#include "ops/op_test_util.h"

using namespace retort;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {
const DType kAllTypes[] = {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8};
}  // namespace

TEST_CASE("casts between every dtype pair through strided views (CPU)") {
  // small non-negative integers are exact in every dtype
  Tensor base = Tensor::from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4}, DType::f64);
  for (DType from : kAllTypes)
    for (DType to : kAllTypes) {
      INFO(std::string(dtype_name(from)) << " -> " << std::string(dtype_name(to)));
      Tensor src = base.to(from).transpose(0, 1).slice(0, 1, 4, 2);  // [[1, 5, 9], [3, 7, 11]]
      CHECK_FALSE(src.is_contiguous());
      Tensor out = src.to(to);
      CHECK(out.dtype() == to);
      if (from != to) CHECK(out.is_contiguous());  // same dtype: to() returns the view itself
      check_close(out, {1, 5, 9, 3, 7, 11}, 0);
    }
}

TEST_CASE("add_: in place, in double, rounded once to the dtype; counters count exactly") {
  for (DType dt : kAllTypes) {
    INFO(dtype_name(dt));
    Tensor t = Tensor::from_vector({0, 1, 2, 250}, {4}, dt);
    const void* storage = t.raw_data();
    t.add_(3.0);
    CHECK(t.raw_data() == storage);  // in place
    const std::vector<double> want = {3, 4, 5, dt == DType::u8 ? double(uint8_t(253)) : 253.0};
    CHECK(t.to_vector() == want);
  }
  Tensor counter = Tensor::zeros({}, DType::i64);
  for (int i = 0; i < 1000; ++i) counter.add_(1.0);
  CHECK(counter.item() == 1000.0);
  Tensor x = random_tensor({7, 5}, 3, -1, 1, DType::f32);
  const std::vector<double> before = x.to_vector();
  x.transpose(0, 1).add_(0.25);  // a strided view goes through add + copy_
  const std::vector<double> after = x.to_vector();
  for (size_t i = 0; i < before.size(); ++i) CHECK(after[i] == double(float(before[i] + 0.25)));
}

TEST_SUITE("gpu") {
TEST_CASE("cuda parity: copy, cast and contiguous") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  for (Shape s : {Shape{1}, Shape{7, 3}, Shape{33, 65}, Shape{5, 9, 31}}) {
    // values in [0, 200) so that i64 and u8 casts are defined
    Tensor x = random_tensor(s, 61, 0.0, 200.0);
    Tensor xg = x.to(gpu);
    CHECK(xg.to(Device::cpu()).to_vector() == x.to_vector());
    for (DType from : kAllTypes)
      for (DType to : kAllTypes) {
        INFO(shape_str(s) << " " << std::string(dtype_name(from)) << " -> " << std::string(dtype_name(to)));
        Tensor c = x.to(from), g = xg.to(from);
        CHECK(g.to(to).to(Device::cpu()).to_vector() == c.to(to).to_vector());
        Tensor ct = c.transpose(0, -1), gt_view = g.transpose(0, -1);
        CHECK(gt_view.to(to).to(Device::cpu()).to_vector() == ct.to(to).to_vector());
      }
    // contiguous() of strided views: transpose, stepped slice, expand, permute
    Tensor t = x.transpose(0, -1), tg = xg.transpose(0, -1);
    CHECK(tg.contiguous().to(Device::cpu()).to_vector() == t.contiguous().to_vector());
    Tensor sl = x.slice(0, 0, s[0], 2), slg = xg.slice(0, 0, s[0], 2);
    CHECK(slg.contiguous().to(Device::cpu()).to_vector() == sl.contiguous().to_vector());
    Shape big = s;
    big.insert(big.begin(), 3);
    CHECK(xg.expand(big).contiguous().to(Device::cpu()).to_vector() == x.expand(big).contiguous().to_vector());
    if (s.size() == 3) {
      CHECK(xg.permute({2, 0, 1}).contiguous().to(Device::cpu()).to_vector() ==
            x.permute({2, 0, 1}).contiguous().to_vector());
    }
    // copy_ into a strided destination on the device
    Tensor dst = Tensor::zeros(t.shape(), DType::f64, gpu), dst_c = Tensor::zeros(t.shape(), DType::f64);
    dst.transpose(0, -1).copy_(xg);
    dst_c.transpose(0, -1).copy_(x);
    CHECK(dst.to(Device::cpu()).to_vector() == dst_c.to_vector());
  }
}

TEST_CASE("cuda parity: fill") {
  RETORT_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  for (DType dt : kAllTypes)
    for (double v : {0.0, 1.0, 3.0, 117.0}) {
      INFO(std::string(dtype_name(dt)) << " fill " << v);
      for (Shape s : {Shape{}, Shape{1}, Shape{1031}, Shape{33, 65}})
        CHECK(Tensor::full(s, v, dt, gpu).to(Device::cpu()).to_vector() == Tensor::full(s, v, dt).to_vector());
      // fill_ of a strided view goes through the broadcast copy
      Tensor a = Tensor::zeros({9, 7}, dt, gpu), b = Tensor::zeros({9, 7}, dt);
      a.slice(1, 1, 7, 2).fill_(v);
      b.slice(1, 1, 7, 2).fill_(v);
      CHECK(a.to(Device::cpu()).to_vector() == b.to_vector());
    }
  for (double v : {-2.5, 0.1, 1e30})
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      CHECK(Tensor::full({5, 3}, v, dt, gpu).to(Device::cpu()).to_vector() == Tensor::full({5, 3}, v, dt).to_vector());
}

TEST_CASE("cuda parity: add_") {
  RETORT_REQUIRE_GPU();
  for (DType dt : kAllTypes) {
    INFO(dtype_name(dt));
    const Tensor base = Tensor::from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4}, dt);
    Tensor g = base.to(Device::cuda()), c = base.clone();
    g.add_(5.0);
    c.add_(5.0);
    CHECK(g.to(Device::cpu()).to_vector() == c.to_vector());
  }
  const Tensor x = random_tensor({1031}, 9, -1, 1, DType::f32);
  Tensor g = x.to(Device::cuda()), c = x.clone();
  g.add_(0.1);
  c.add_(0.1);
  CHECK(g.to(Device::cpu()).to_vector() == c.to_vector());
}
}
