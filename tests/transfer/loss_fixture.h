// Reference values of the transfer losses: tests/fixtures/losses/<name>.safetensors, written by
// bench/torch_reference/make_loss_fixtures.py from a published implementation (torchdistill
// where it has the method, else RepDistiller's code; the file's metadata "reference" says which).
// A fixture holds the inputs ("input.<k>", f64), the reference loss ("loss"), the gradient of
// the loss with respect to each input the reference differentiated ("grad.<k>") and optional
// further outputs ("extra.<k>"). A test computes retort's loss on the same inputs and checks
// the value and the gradients within the bound: relative error 1e-5 in f64, 1e-4 in f32
// (norm-wise and max-abs, tests/reference_compare.h).
#pragma once
#include <map>
#include <string>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "reference_compare.h"

namespace retort::test {

inline double loss_fixture_tolerance(DType dtype) { return dtype == DType::f64 ? 1e-5 : 1e-4; }

struct LossFixture {
  std::string name;
  SafetensorsContents file;

  bool has(const std::string& key) const { return file.contains(key); }
  // "input.<key>" in dtype on device; requires_grad when the fixture has "grad.<key>".
  Tensor input(const std::string& key, DType dtype = DType::f64, Device device = Device::cpu()) const {
    REQUIRE_MESSAGE(file.contains("input." + key), "fixture " << name << " has no input." << key);
    // A fresh leaf each call (the file's tensor is never the one that gets requires_grad).
    Tensor t = file.at("input." + key).detach().to(dtype).to(device).contiguous().clone();
    if (file.contains("grad." + key)) t.requires_grad_(true);
    return t;
  }
  const Tensor& reference(const std::string& key) const {
    REQUIRE_MESSAGE(file.contains(key), "fixture " << name << " has no " << key);
    return file.at(key);
  }
  std::string meta(const std::string& key) const {
    auto it = file.metadata.find(key);
    REQUIRE_MESSAGE(it != file.metadata.end(), "fixture " << name << " metadata lacks '" << key << "'");
    return it->second;
  }
  double number(const std::string& key) const { return std::stod(meta(key)); }
};

inline LossFixture load_loss_fixture(const std::string& name) {
  LossFixture f;
  f.name = name;
  f.file = read_safetensors(source_path("tests/fixtures/losses/" + name + ".safetensors").string());
  return f;
}

// Backpropagates `loss` and checks it and the gradient of every input of `inputs` (by fixture
// key) that the fixture has a "grad.<key>" for; every such gradient must be checked.
inline void check_loss_fixture(const LossFixture& f, const Tensor& loss, const std::map<std::string, Tensor>& inputs,
                               DType dtype) {
  const double tol = loss_fixture_tolerance(dtype);
  const std::string where = f.name + " (reference: " + f.meta("reference") + ") in " + dtype_name(dtype);
  INFO("fixture " << where);
  Worst worst;
  check_matches("loss", loss.reshape({}), f.reference("loss").reshape({}), tol, &worst);
  Tensor(loss).backward();
  int checked = 0, expected = 0;
  for (const auto& [key, t] : f.file.tensors) expected += key.rfind("grad.", 0) == 0;
  for (const auto& [key, t] : inputs) {
    if (!f.has("grad." + key)) continue;
    REQUIRE_MESSAGE(t.grad().defined(), "no gradient reached input " << key);
    check_matches("grad." + key, t.grad(), f.reference("grad." + key), tol, &worst);
    ++checked;
  }
  CHECK_MESSAGE(checked == expected, "the fixture has " << expected << " gradients, the test checked " << checked);
  MESSAGE(where << ": worst rel err norm-wise " << worst.err.norm_rel << " ("
                 << worst.norm_what << "), max-abs " << worst.err.max_rel << " (" << worst.max_what << ")");
}

}  // namespace retort::test
