// Image-folder scanning (sorted classes and files), up-front header checks, streamed or
// in-memory datasets of the files. Work over files runs in parallel; the first failing file
// (in sorted order) is the one reported, so errors are deterministic.
#include "engine/data/image_folder.h"
#include <algorithm>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include "engine/data/image_decode.h"
#include "engine/data/image_source.h"
#include "engine/error.h"

namespace retort::data {
namespace fs = std::filesystem;
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// Runs work(i) for every file in parallel; rethrows the error of the first failing file in
// list order.
void for_each_file(const std::vector<std::string>& files, const std::function<void(int64_t)>& work) {
  const int64_t n = int64_t(files.size());
  std::vector<std::exception_ptr> errors(files.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    try {
      work(i);
    } catch (...) {
      errors[size_t(i)] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Reads every file's header: each must be an image stb_image reads, and large enough for p.
void check_headers(const std::vector<std::string>& files, const Preprocess& p) {
  for_each_file(files, [&](int64_t i) {
    const std::string& f = files[size_t(i)];
    const ImageSize size = read_image_size(f);
    preprocess_window(size.height, size.width, p, f);
  });
}

// Decodes `files` into `out` (resized by p), image after image.
void decode_into(const std::vector<std::string>& files, const Preprocess& p, uint8_t* out) {
  const int64_t n = p.channels * p.height * p.width;
  for_each_file(files, [&](int64_t i) { decode_image_file(files[size_t(i)], p, out + i * n); });
}

void check_request(const std::string& root, const Preprocess& p) {
  RETORT_CHECK(p.channels == 1 || p.channels == 3, "image folder {}: channels must be 1 or 3, got {}", root, p.channels);
  RETORT_CHECK(p.height > 0 && p.width > 0, "image folder {}: image size {}x{} must be positive", root, p.height,
               p.width);
  RETORT_CHECK(p.resize_shorter >= 0, "image folder {}: resize_shorter must be >= 0, got {}", root, p.resize_shorter);
}

// root/<class>/<image files>: files sorted within each class, classes in sorted order.
void list_labelled_files(const std::string& root, const std::vector<std::string>& classes,
                         std::vector<std::string>& files, std::vector<int64_t>& labels) {
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
}

std::vector<std::string> list_files_below(const std::string& root) {
  RETORT_CHECK(fs::is_directory(root), "unlabelled image folder {}: no such directory", root);
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
  RETORT_CHECK(!files.empty(), "unlabelled image folder {}: no .png/.jpg/.jpeg/.bmp images in it or below it", root);
  std::sort(files.begin(), files.end());
  return files;
}

void append_to_streamed(Dataset& ds, std::vector<std::string> extra, const Preprocess& p, int64_t cache_bytes) {
  const auto* folder = dynamic_cast<const FolderImageSource*>(ds.source.get());
  RETORT_CHECK(folder, "dataset '{}': extra images can be appended to an in-memory dataset or one streamed from an "
               "image folder, not to one streamed from another kind of source", ds.name);
  RETORT_CHECK(folder->preprocess() == p, "dataset '{}' is streamed with '{}' ({} channels); the extra images would be "
               "'{}' ({} channels)", ds.name, folder->preprocess().describe(), folder->preprocess().channels,
               p.describe(), p.channels);
  std::vector<std::string> files = folder->files();
  files.insert(files.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
  ds.source = std::make_shared<const FolderImageSource>(std::move(files), p, cache_bytes);
}

void append_to_memory(Dataset& ds, const std::vector<std::string>& extra, const Preprocess& p) {
  const size_t old_bytes = ds.images.size();
  ds.images.resize(old_bytes + extra.size() * size_t(ds.image_numel()));
  decode_into(extra, p, ds.images.data() + old_bytes);
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

Dataset load_image_folder(const std::string& root, const Preprocess& p, int64_t cache_bytes, std::string name) {
  check_request(root, p);
  RETORT_CHECK(cache_bytes >= 0, "image folder {}: the cache must be >= 0 bytes (0: none), got {}", root, cache_bytes);
  const std::vector<std::string> classes = list_class_folders(root);
  RETORT_CHECK(!classes.empty(), "image folder {}: no class folders found (expected root/<class_name>/<images>)", root);
  std::vector<std::string> files;
  Dataset ds;
  list_labelled_files(root, classes, files, ds.labels);
  check_headers(files, p);

  ds.name = name.empty() ? fs::path(root).filename().string() : std::move(name);
  ds.channels = p.channels, ds.height = p.height, ds.width = p.width;
  ds.num_classes = int64_t(classes.size());
  ds.class_names = classes;
  ds.source = std::make_shared<const FolderImageSource>(std::move(files), p, cache_bytes);
  ds.validate();
  return ds;
}

void append_unlabelled_folder(Dataset& ds, const std::string& root, const Preprocess& p, int64_t cache_bytes) {
  check_request(root, p);
  RETORT_CHECK(p.channels == ds.channels && p.height == ds.height && p.width == ds.width,
               "unlabelled image folder {}: its images would be {}x{}x{} but dataset '{}' holds {}x{}x{} images", root,
               p.channels, p.height, p.width, ds.name, ds.channels, ds.height, ds.width);
  std::vector<std::string> extra = list_files_below(root);
  check_headers(extra, p);
  const size_t count = extra.size();
  if (ds.in_memory())
    append_to_memory(ds, extra, p);
  else
    append_to_streamed(ds, std::move(extra), p, cache_bytes);
  ds.labels.resize(ds.labels.size() + count, 0);
}

std::vector<uint8_t> load_unlabelled_images(const std::string& root, int64_t channels, int64_t height, int64_t width,
                                            int64_t& count) {
  Dataset ds;
  ds.channels = channels, ds.height = height, ds.width = width;
  append_unlabelled_folder(ds, root, Preprocess{channels, height, width, 0, Interpolation::bilinear}, 0);
  count = ds.size();
  return std::move(ds.images);
}

}  // namespace retort::data
