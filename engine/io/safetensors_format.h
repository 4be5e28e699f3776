// The safetensors format without tensors: parsing and validating a file's bytes into an index
// (names, dtypes, shapes, byte ranges, metadata) and decoding one entry's bytes. Pure code on
// a byte span (fmt + nlohmann only), so the fuzzer (fuzz/fuzz_safetensors.cpp) links it alone.
//
// Validation follows the specification and the reference implementation (huggingface/
// safetensors): 8-byte little-endian header length N, at most kSafetensorsMaxHeaderBytes and
// no more than the bytes that follow; the header is a UTF-8 JSON object; each tensor entry has
// "dtype" (a string), "shape" (non-negative integers; the element count is computed without
// overflow) and "data_offsets" [begin, end] relative to the data region; end - begin equals
// element count x dtype size; the ranges tile the data region exactly (no overlap, no hole,
// nothing after the last tensor); "__metadata__" is an object of strings (or null); a name
// appears once. Extra keys inside an entry are ignored, as the reference does.
//
// dtypes: F32, F64, BF16, I64 and U8 load as themselves. F16 has no retort dtype: it is
// converted to F32 on load, exactly (every F16 value, subnormals, +-inf and NaN included, is
// representable in F32). BOOL, I8, I16, I32, U16, U32, U64 and the F8 types are valid
// safetensors that retort does not load: they are rejected by name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "core/dtype.h"

namespace retort {

using Shape = std::vector<int64_t>;
using StringMap = std::map<std::string, std::string>;

// The reference implementation's limit on the JSON header (100 MB).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

enum class SafetensorsDType : uint8_t { F64, F32, F16, BF16, I64, U8 };

struct SafetensorsEntry {
  std::string name;
  SafetensorsDType file_dtype = SafetensorsDType::F32;  // as stored
  DType dtype = DType::f32;                             // as loaded (F16 -> f32)
  Shape shape;
  int64_t numel = 0;
  uint64_t begin = 0, end = 0;  // byte range, relative to the start of the data region
};

struct SafetensorsIndex {
  std::vector<SafetensorsEntry> entries;  // in header order
  StringMap metadata;
  uint64_t data_start = 0;  // file offset of the data region (8 + header length)
  uint64_t file_size = 0;
};

// Parses and validates the whole file held in bytes[0, size). Any defect throws a
// retort::Error "<label>: byte <offset>: [tensor '<name>': ]<what was wrong>". After it
// returns, every entry's [data_start + begin, data_start + end) lies inside the bytes.
SafetensorsIndex parse_safetensors_index(const unsigned char* bytes, size_t size, const std::string& label);

// Bytes one element takes in the file, and the format's name of the dtype.
size_t safetensors_file_dtype_size(SafetensorsDType t);
const char* safetensors_file_dtype_name(SafetensorsDType t);

// Decodes an entry's bytes (src points at its begin, end - begin bytes long, any alignment)
// into dst: numel elements of entry.dtype, native layout (dst suitably aligned).
void decode_safetensors_entry(const SafetensorsEntry& entry, const unsigned char* src, void* dst);

// IEEE binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads).
float f16_bits_to_f32(uint16_t bits);

}  // namespace retort
