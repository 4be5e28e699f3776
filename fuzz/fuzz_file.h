// A fuzz input as a file: most of retort's readers take paths, so each input is written to a
// file the target then reads, in /dev/shm (memory, no disk) where it exists, else $TMPDIR or
// /tmp; one file per process and suffix, rewritten for each input.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace retort::fuzz {

inline std::string input_file(const char* suffix) {
  static const std::string dir = [] {
    if (::access("/dev/shm", W_OK) == 0) return std::string("/dev/shm");
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp");
  }();
  return dir + "/retort-fuzz-" + std::to_string(::getpid()) + suffix;
}

inline std::string write_input(const uint8_t* data, size_t size, const char* suffix) {
  std::string path = input_file(suffix);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace retort::fuzz
