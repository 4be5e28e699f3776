// Helpers for recipe tests: temporary files and directories that clean up after themselves,
// the text of an error a call throws, a weights file's values, a bit-for-bit comparison of one
// model's weights in two run directories, a stage cache's entry count, and a small KD recipe.
#pragma once
#include <doctest/doctest.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include <unistd.h>
#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace retort::test {

// A fresh directory under the system temp dir, removed with its contents on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("retort-recipe-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  // Writes `text` to a file in the directory and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

// The message of the retort::Error that f throws; fails the test when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const retort::Error& e) {
    return e.what();
  }
  FAIL("expected a retort::Error");
  return {};
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every tensor of a safetensors file, by name, as doubles (for exact comparisons).
inline std::map<std::string, std::vector<double>> weights_of(const std::filesystem::path& file) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [name, t] : retort::read_safetensors(file.string()).tensors) out[name] = t.to_vector();
  return out;
}

// Checks that `model`'s weights in two run directories (models/<model>.safetensors) are
// bit-identical, tensor by tensor, naming each tensor that differs. Returns how many tensors it
// compared, so a caller can require that the files were not (nearly) empty.
inline size_t check_same_weights(const std::filesystem::path& run_a, const std::filesystem::path& run_b,
                                 const std::string& model) {
  const auto a = weights_of(run_a / "models" / (model + ".safetensors"));
  const auto b = weights_of(run_b / "models" / (model + ".safetensors"));
  REQUIRE(a.size() == b.size());
  for (const auto& [name, va] : a) {
    INFO(model << " tensor " << name);
    REQUIRE(b.count(name) == 1);
    CHECK(va == b.at(name));  // exact equality: bit-identical
  }
  return a.size();
}

// The entries of a stage-cache directory (temporary ".<key>.tmp.<pid>" ones not counted).
inline int cache_entries(const std::filesystem::path& dir) {
  int n = 0;
  if (std::filesystem::exists(dir))
    for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string()[0] != '.';
  return n;
}

// A KD recipe on Fashion-MNIST: a resnet8 "teacher" stage, then a "kd" stage training a resnet8
// student (batch 8, SGD with momentum) with the given loss terms; `extra` adds lines to the kd
// stage (e.g. "precision = \"bf16\"").
inline std::string tiny_kd_recipe(const std::string& losses, const std::string& extra = "") {
  return R"(
[run]
name = "tiny_kd"
device = "cpu"
[data]
dataset = "fashion-mnist"
[models.teacher]
arch = "resnet8"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
batch_size = 8
[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 1
batch_size = 8
optimizer = { type = "sgd", lr = 0.05, momentum = 0.9 }
)" + extra + "\nlosses = [ " + losses + " ]\n";
}

}  // namespace retort::test
