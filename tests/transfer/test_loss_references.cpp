// Every transfer method of `retort list losses` is checked against a published implementation:
// each registered loss (but plain cross-entropy, which the model parity tests cover) has at least
// one reference-value fixture (tests/fixtures/losses/<loss>*.safetensors, written by
// bench/torch_reference/make_loss_fixtures.py; Hinton KD's is tests/fixtures/torch/kd_hinton),
// each fixture names what computed it, and the fixtures stay small (issue 20: all of them
// together under 5 MB).
#include <filesystem>
#include <set>
#include "engine/io/safetensors.h"
#include "helpers.h"
#include "transfer/loss_schema.h"

using namespace retort;
namespace fs = std::filesystem;

TEST_CASE("loss references: every registered method has a fixture from a published implementation") {
  const fs::path dir = test::source_path("tests/fixtures/losses");
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  size_t methods = 0;
  for (const auto& loss : registered_losses()) {
    // Plain cross-entropy, and the losses other tests register in this process ("test_*").
    if (loss == "ce" || loss.rfind("test_", 0) == 0) continue;
    ++methods;
    INFO("loss " << loss);
    if (loss == "kd") {
      CHECK(fs::exists(test::source_path("tests/fixtures/torch/kd_hinton.safetensors")));
      continue;
    }
    // "<loss>.safetensors" or "<loss>_<case>.safetensors" (not another loss's: "at" vs "aft").
    int found = 0;
    for (const auto& name : files) {
      const bool mine = name == loss + ".safetensors" || name.rfind(loss + "_", 0) == 0;
      if (!mine) continue;
      ++found;
      const SafetensorsContents f = read_safetensors((dir / name).string());
      CHECK_MESSAGE(f.metadata.count("reference") == 1, name << " does not say what computed it");
      CHECK_MESSAGE(f.contains("loss"), name);
    }
    CHECK_MESSAGE(found > 0, "no reference fixture for loss '" << loss << "' in tests/fixtures/losses");
  }
  CHECK(methods == 21);  // with task-oriented transfer (a recipe over kd and ce): the 22 methods
}

TEST_CASE("loss references: the fixtures stay small") {
  uintmax_t losses = 0, all = 0;
  for (const auto& e : fs::recursive_directory_iterator(test::source_path("tests/fixtures")))
    if (e.is_regular_file()) {
      all += e.file_size();
      if (e.path().parent_path().filename() == "losses") losses += e.file_size();
    }
  CHECK(losses <= 1'000'000);  // the generator's own bound
  CHECK(all <= 5'000'000);     // issue 20's bound for every fixture together
}
