// Whole-file reads for dataset loaders: gzip is decompressed transparently (zlib), plain
// files pass through; every error names the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace retort::data {

// The file's bytes, gunzipped when it is gzip. Throws a retort::Error naming the file when it
// cannot be opened or the gzip stream is truncated or corrupt.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Big-endian u32 at `offset` (the caller has checked the bounds).
inline uint32_t read_be32(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t(bytes[offset]) << 24) | (uint32_t(bytes[offset + 1]) << 16) | (uint32_t(bytes[offset + 2]) << 8) |
         uint32_t(bytes[offset + 3]);
}

// "a/b/c.gz" -> "c.gz": the short name used at the start of error messages is the full path;
// this helper is for messages that mention a second file.
std::string base_name(const std::string& path);

}  // namespace retort::data
