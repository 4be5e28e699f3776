// The op-test harness's runs and registry (see tests/ops/op_case.h), and the coverage check.
#include "ops/op_case.h"
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include "ops/op_test_util.h"

namespace retort::test {
namespace {

std::vector<const OpCases*>& registry() {
  static std::vector<const OpCases*> r;
  return r;
}

// Inputs of a case in f64: uniform in [lo, hi), away from the kinks, a seed per input.
std::vector<Tensor> f64_inputs(const OpCase& c, const std::vector<Shape>& shapes, uint64_t seed) {
  std::vector<Tensor> in;
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto [lo, hi] = k < c.ranges.size() ? c.ranges[k] : std::pair<double, double>{c.lo, c.hi};
    in.push_back(random_away_from(shapes[k], seed + 17 * k, lo, hi, c.kinks));
  }
  return in;
}

// Runs c on `inputs` (cast to dt, moved to device, as leaves that want gradients when the case
// has them), contracts the output with a fixed weight and backpropagates. Returns the output
// and the input gradients, on the CPU.
struct Evaluated {
  Tensor out;
  std::vector<Tensor> grads;
};
Evaluated evaluate(const OpCase& c, const std::vector<Tensor>& inputs, DType dt, Device device) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor x = t.to(dt).to(device).detach();
    if (c.gradients) x.requires_grad_(true);
    leaves.push_back(x);
  }
  Evaluated e;
  Tensor out = c.fn(leaves);
  if (c.gradients) {
    // The same upstream weights in every dtype (bf16-representable values).
    Tensor w = random_tensor(out.shape(), 777, 0.5, 1.5).to(DType::bf16).to(dt).to(device);
    sum(mul(out, w)).backward();
    for (const Tensor& x : leaves) {
      REQUIRE_MESSAGE(x.grad().defined(), c.name << ": an input got no gradient");
      e.grads.push_back(x.grad().to(Device::cpu()).to(DType::f64));
    }
  }
  e.out = out.to(Device::cpu());
  if (is_floating(e.out.dtype())) e.out = e.out.to(DType::f64);
  return e;
}

void check_same(const OpCase& c, const Evaluated& got, const Evaluated& want, double tol, const std::string& what,
                bool gradients = true) {
  INFO(c.name << " (" << c.op << "): " << what << ", tolerance " << tol);
  REQUIRE(got.out.shape() == want.out.shape());
  CHECK(max_rel_error(got.out, want.out) <= tol);
  for (size_t k = 0; gradients && k < got.grads.size(); ++k) {
    INFO("gradient of input " << k);
    CHECK(max_rel_error(got.grads[k], want.grads[k]) <= tol);
  }
}

}  // namespace

OpCases::OpCases(std::string family, std::vector<OpCase> cases, std::vector<std::pair<std::string, std::string>> dedicated)
    : family_(std::move(family)), cases_(std::move(cases)), dedicated_(std::move(dedicated)) {
  registry().push_back(this);
}

const std::vector<const OpCases*>& registered_op_cases() { return registry(); }

void check_gradients(const OpCases& cases) {
  for (const OpCase& c : cases.cases()) {
    if (!c.gradients || !c.gradcheck) continue;
    INFO(c.name << " (" << c.op << "): f64 gradients against finite differences");
    gradcheck(c.fn, f64_inputs(c, c.shapes, 101));
  }
}

void check_bf16(const OpCases& cases) {
  for (const OpCase& c : cases.cases()) {
    if (!c.bf16) continue;
    // The same (bf16-representable) input values in both: what differs is the op's own bf16
    // arithmetic and rounding, not the rounding of its inputs.
    auto in = f64_inputs(c, c.shapes, 202);
    for (Tensor& t : in) t = t.to(DType::bf16).to(DType::f64);
    check_same(c, evaluate(c, in, DType::bf16, Device::cpu()), evaluate(c, in, DType::f32, Device::cpu()),
               op_tolerance(DType::bf16), "bf16 against f32");
  }
}

void check_transposed(const OpCases& cases) {
  for (const OpCase& c : cases.cases()) {
    const Shape& s0 = c.shapes.empty() ? Shape{} : c.shapes[0];
    if (!c.transposed || s0.size() < 2 || s0[s0.size() - 1] < 2 || s0[s0.size() - 2] < 2) continue;
    auto in = f64_inputs(c, c.shapes, 303);
    // The same values laid out transposed: a view whose last two dims are swapped back.
    Tensor t = in[0].transpose(-2, -1).contiguous().transpose(-2, -1);
    REQUIRE_FALSE(t.is_contiguous());
    auto in_t = in;
    in_t[0] = t;
    check_same(c, evaluate(c, in_t, DType::f64, Device::cpu()), evaluate(c, in, DType::f64, Device::cpu()),
               op_tolerance(DType::f64), "transposed first input against its contiguous copy");
  }
}

void check_cuda_parity(const OpCases& cases) {
  for (const OpCase& c : cases.cases()) {
    if (!c.cuda) continue;
    const auto shape_sets = c.gpu_shapes.empty() ? std::vector<std::vector<Shape>>{c.shapes} : c.gpu_shapes;
    for (const auto& shapes : shape_sets) {
      const auto in = f64_inputs(c, shapes, 404);
      for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        if (dt == DType::bf16 && !c.cuda_bf16) continue;
        std::string shape_text;
        for (const auto& s : shapes) shape_text += shape_str(s);
        check_same(c, evaluate(c, in, dt, Device::cuda()), evaluate(c, in, dt, Device::cpu()), op_tolerance(dt),
                   std::string("CUDA against the CPU in ") + dtype_name(dt) + " on " + shape_text,
                   dt != DType::bf16 || c.cuda_bf16_gradients);
      }
    }
  }
}

std::vector<std::string> declared_ops() {
  std::ifstream in(source_path("engine/ops.h"));
  REQUIRE_MESSAGE(in.good(), "cannot read engine/ops.h");
  std::set<std::string> names;
  const std::regex decl(R"(^(?:inline\s+)?(?:Tensor|std::vector<Tensor>)\s+(\w+)\()");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, decl) && m[1].str().rfind("operator", 0) != 0) names.insert(m[1].str());
  }
  return {names.begin(), names.end()};
}

}  // namespace retort::test

using namespace retort;

TEST_CASE("op coverage: every op in engine/ops.h has an OpCase or a named dedicated test") {
  std::set<std::string> covered;
  for (const test::OpCases* family : test::registered_op_cases()) {
    for (const auto& c : family->cases()) covered.insert(c.op);
    for (const auto& [op, test_name] : family->dedicated()) covered.insert(op);
  }
  const auto ops = test::declared_ops();
  CHECK(ops.size() > 40);
  for (const auto& op : ops) {
    INFO("engine/ops.h declares '" << op << "' but no OpCases in tests/ops/ covers it");
    CHECK(covered.count(op) == 1);
  }
}
