// safetensors read/write: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the raw row-major little-endian bytes. Writing is atomic (temp file, fsync, rename);
// reading validates the whole file and names the file and the byte offset of any defect.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include "engine/tensor.h"

namespace retort {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StringMap = std::map<std::string, std::string>;

// What a safetensors file holds: tensors (on the CPU) in the header's order, plus metadata.
struct SafetensorsContents {
  NamedTensors tensors;
  StringMap metadata;

  bool contains(const std::string& name) const;
  // The tensor called `name`; throws a retort::Error naming the file's tensors when absent.
  const Tensor& at(const std::string& name) const;
};

// The safetensors dtype string ("F32", "F64", "BF16", "I64", "U8") and back.
const char* safetensors_dtype_name(DType dtype);
bool parse_safetensors_dtype(const std::string& name, DType& out);

// Writes `tensors` (any device, any layout; stored row-major in list order) and `metadata`
// to `path` atomically: the bytes go to "<path>.tmp.<pid>", are flushed and fsync'ed, then
// renamed over `path`. On any failure the temp file is removed, `path` is left as it was,
// and a retort::Error says what went wrong. Names must be unique, non-empty, not "__metadata__".
void write_safetensors(const std::string& path, const NamedTensors& tensors, const StringMap& metadata = {});

// Reads and validates a whole file. Any defect (short file, header length past the end,
// bad JSON, unknown dtype, bad shape, offsets out of range / overlapping / leaving holes /
// not matching shape x dtype size, trailing bytes) throws a retort::Error of the form
// "<path>: byte <offset>: <what was wrong>".
SafetensorsContents read_safetensors(const std::string& path);

namespace testing {
// Fault injection for tests: the next write_safetensors fails like a full disk once this
// many bytes have been written to the temp file (-1, the default, disables it). One-shot.
void fail_next_safetensors_write_after(int64_t bytes);
}  // namespace testing

}  // namespace retort
