// The fuzz targets as plain functions, one per reader of untrusted input. Each takes one input,
// runs it through the reader and its checks, and says whether the reader accepted or rejected
// it (a clean retort::Error); a crash, a non-retort exception or a broken invariant aborts.
// scripts/fuzz.sh builds each as a libFuzzer binary (RETORT_FUZZ_ENTRY); the test suite replays
// the corpora in tests/fuzz_corpus/<target>/ through the same functions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace retort::fuzz {

// What a reader made of one input: accepted, or rejected with the retort::Error's message.
struct Outcome {
  bool accepted = false;
  std::string error;  // the rejection's message
  static Outcome accept() { return {true, {}}; }
  static Outcome reject(const std::string& why) { return {false, why}; }
};

Outcome safetensors_input(const uint8_t* data, size_t size);  // a whole .safetensors file
Outcome recipe_input(const uint8_t* data, size_t size);       // recipe text; "--set k=v" lines are overrides
Outcome idx_input(const uint8_t* data, size_t size);          // an IDX file (plain or gzip), images or labels
Outcome cifar_input(const uint8_t* data, size_t size);        // byte 0 picks CIFAR-10/100; the rest a batch file
Outcome image_input(const uint8_t* data, size_t size);        // byte 0 picks 1 or 3 channels; the rest an image
Outcome checkpoint_input(const uint8_t* data, size_t size);   // a training checkpoint

}  // namespace retort::fuzz

// The libFuzzer entry point of one target, compiled only into its fuzz binary.
#ifdef RETORT_FUZZ_ENTRY
#define RETORT_FUZZ_TARGET(function)                                          \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    retort::fuzz::function(data, size);                                      \
    return 0;                                                                \
  }
#else
#define RETORT_FUZZ_TARGET(function)
#endif
