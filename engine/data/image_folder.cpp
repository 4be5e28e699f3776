// Image-folder scanning (sorted classes and files) and parallel decoding; the first failing
// file (in sorted order) is the one reported, so errors are deterministic.
#include "engine/data/image_folder.h"
#include <algorithm>
#include <exception>
#include <filesystem>
#include "engine/data/image_decode.h"
#include "engine/error.h"

namespace retort::data {
namespace fs = std::filesystem;
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// Decodes `files` in parallel into ds.images (ds's shape already set); the first failing
// file in list order is the one reported.
void decode_all(const std::vector<std::string>& files, Dataset& ds) {
  ds.images.resize(files.size() * size_t(ds.image_numel()));
  const int64_t n = int64_t(files.size());
  std::vector<std::exception_ptr> errors(files.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t i = 0; i < n; ++i) {
    try {
      decode_image_file(files[size_t(i)], ds.channels, ds.height, ds.width, ds.images.data() + i * ds.image_numel());
    } catch (...) {
      errors[size_t(i)] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

void check_request(const std::string& root, int64_t channels, int64_t height, int64_t width) {
  RETORT_CHECK(channels == 1 || channels == 3, "image folder {}: channels must be 1 or 3, got {}", root, channels);
  RETORT_CHECK(height > 0 && width > 0, "image folder {}: image size {}x{} must be positive", root, height, width);
}

}  // namespace

std::vector<std::string> list_class_folders(const std::string& root) {
  RETORT_CHECK(fs::is_directory(root), "image folder {}: no such directory (expected root/<class_name>/<images>)", root);
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string n = entry.path().filename().string();
    if (entry.is_directory() && !n.empty() && n[0] != '.') classes.push_back(n);
  }
  std::sort(classes.begin(), classes.end());
  return classes;
}

Dataset load_image_folder(const std::string& root, int64_t channels, int64_t height, int64_t width, std::string name) {
  check_request(root, channels, height, width);
  const std::vector<std::string> classes = list_class_folders(root);
  RETORT_CHECK(!classes.empty(), "image folder {}: no class folders found (expected root/<class_name>/<images>)", root);

  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> in_class;
    for (const auto& entry : fs::directory_iterator(fs::path(root) / classes[c]))
      if (entry.is_regular_file() && is_image_file(entry.path())) in_class.push_back(entry.path().string());
    RETORT_CHECK(!in_class.empty(), "image folder {}: class folder '{}' has no .png/.jpg/.jpeg/.bmp images", root,
                 classes[c]);
    std::sort(in_class.begin(), in_class.end());
    for (auto& f : in_class) {
      files.push_back(std::move(f));
      labels.push_back(int64_t(c));
    }
  }

  Dataset ds;
  ds.name = name.empty() ? fs::path(root).filename().string() : std::move(name);
  ds.channels = channels, ds.height = height, ds.width = width;
  ds.num_classes = int64_t(classes.size());
  ds.class_names = classes;
  ds.labels = labels;
  decode_all(files, ds);
  ds.validate();
  return ds;
}

std::vector<uint8_t> load_unlabelled_images(const std::string& root, int64_t channels, int64_t height, int64_t width,
                                            int64_t& count) {
  check_request(root, channels, height, width);
  RETORT_CHECK(fs::is_directory(root), "unlabelled image folder {}: no such directory", root);
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
  RETORT_CHECK(!files.empty(), "unlabelled image folder {}: no .png/.jpg/.jpeg/.bmp images in it or below it", root);
  std::sort(files.begin(), files.end());
  Dataset ds;
  ds.channels = channels, ds.height = height, ds.width = width;
  decode_all(files, ds);
  count = int64_t(files.size());
  return std::move(ds.images);
}

}  // namespace retort::data
