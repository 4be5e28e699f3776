// Replays every fuzz corpus (tests/fuzz_corpus/<target>/) through its fuzz target's function
// (fuzz/fuzz_targets.h), the same code libFuzzer runs: each input must be accepted or rejected
// with a retort::Error (a crash or a broken invariant aborts the suite); the hand-made valid_*
// seeds must be accepted and the bad_* seeds rejected; crash_* inputs the fuzzer once found are
// kept here as regressions.
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>
#include "fuzz/fuzz_targets.h"
#include "helpers.h"

namespace {
using retort::fuzz::Outcome;

struct Replay {
  int files = 0, accepted = 0, rejected = 0;
};

Replay replay_corpus(const std::string& target, Outcome (*run)(const uint8_t*, size_t)) {
  const std::filesystem::path corpus = retort::test::source_path("tests/fuzz_corpus/" + target);
  REQUIRE(std::filesystem::is_directory(corpus));
  Replay r;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string name = entry.path().filename().string();
    INFO(target << " corpus file " << name);
    const Outcome outcome = run(bytes.data(), bytes.size());
    INFO("rejected with: " << outcome.error);
    ++r.files;
    (outcome.accepted ? r.accepted : r.rejected) += 1;
    if (name.rfind("valid_", 0) == 0) CHECK(outcome.accepted);
    if (name.rfind("bad_", 0) == 0) CHECK_FALSE(outcome.accepted);
    if (!outcome.accepted) CHECK_FALSE(outcome.error.empty());
  }
  return r;
}

void check_counts(const Replay& r, int files, int accepted, int rejected) {
  CHECK(r.files >= files);
  CHECK(r.accepted >= accepted);
  CHECK(r.rejected >= rejected);
}
}  // namespace

TEST_CASE("fuzz corpora: safetensors headers replay through the fuzz target") {
  check_counts(replay_corpus("safetensors", retort::fuzz::safetensors_input), 20, 4, 16);
}
TEST_CASE("fuzz corpora: recipes (with --set overrides) replay through the fuzz target") {
  check_counts(replay_corpus("recipe", retort::fuzz::recipe_input), 13, 2, 11);
}
TEST_CASE("fuzz corpora: IDX files (plain and gzip) replay through the fuzz target") {
  check_counts(replay_corpus("idx", retort::fuzz::idx_input), 13, 4, 9);
}
TEST_CASE("fuzz corpora: CIFAR batch files replay through the fuzz target") {
  check_counts(replay_corpus("cifar", retort::fuzz::cifar_input), 6, 2, 4);
}
TEST_CASE("fuzz corpora: PNG and BMP images replay through the fuzz target") {
  check_counts(replay_corpus("image", retort::fuzz::image_input), 8, 4, 4);
}
TEST_CASE("fuzz corpora: checkpoints replay through the fuzz target") {
  check_counts(replay_corpus("checkpoint", retort::fuzz::checkpoint_input), 10, 2, 8);
}
