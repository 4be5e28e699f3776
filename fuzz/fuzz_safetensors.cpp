// libFuzzer target for the safetensors reader: every input is a whole "file". The bytes go
// through parse_safetensors_index (all of the validation read_safetensors does) and, when they
// are accepted, every entry is decoded (F16 -> F32 included) into a buffer of exactly the
// size the loaded tensor would have, so ASan sees any read past the input or write past the
// buffer. Rejection must be a retort::Error; any other exception or a crash is a finding.
// Built and run by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <vector>
#include "core/dtype.h"
#include "engine/error.h"
#include "engine/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace retort;
  try {
    SafetensorsIndex index = parse_safetensors_index(data, size, "fuzz-input");
    for (const auto& e : index.entries) {
      if (e.begin > index.file_size - index.data_start || e.end > index.file_size - index.data_start) std::abort();
      std::vector<unsigned char> out(size_t(e.numel) * dtype_size(e.dtype));
      decode_safetensors_entry(e, data + index.data_start + e.begin, out.data());
    }
  } catch (const Error&) {
    // a clean rejection
  }
  return 0;
}
