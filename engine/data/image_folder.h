// Image-folder datasets: root/<class_name>/*.png|jpg|jpeg|bmp, classes sorted by name, streamed
// from disk (decoded and preprocessed on demand through a bounded cache, engine/data/image_source.h);
// and unlabelled extra folders appended to a dataset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "engine/data/dataset.h"
#include "engine/data/preprocess.h"

namespace retort::data {

// The class folder names under root (non-hidden directories), sorted: the class order.
std::vector<std::string> list_class_folders(const std::string& root);

// A streamed dataset of root/<class>/<images> (classes and files sorted by name), images shaped
// by `p` and kept in an LRU cache of at most cache_bytes of pixels (0: none). Every file's
// header is read up front (no pixels decoded), so an unreadable or corrupt file, or one too
// small for p's centre crop, is reported here, naming it, rather than mid-training.
Dataset load_image_folder(const std::string& root, const Preprocess& p, int64_t cache_bytes, std::string name = "");

// Appends every image file in or below `root` (any layout, sorted by path) to `ds` with label 0
// (a placeholder for unlabelled transfer data). p must give ds's shape. An in-memory ds gets
// the images decoded into ds.images; a streamed one (from load_image_folder, p equal to its
// preprocessing) gets a new source over both file lists, with a cache of cache_bytes.
void append_unlabelled_folder(Dataset& ds, const std::string& root, const Preprocess& p, int64_t cache_bytes);

// The old interface of append_unlabelled_folder (kept until train/run_data.cpp moves to it):
// the images of `root`, decoded to channels x height x width (bilinear resize), back to back;
// `count` receives how many.
std::vector<uint8_t> load_unlabelled_images(const std::string& root, int64_t channels, int64_t height, int64_t width,
                                            int64_t& count);

}  // namespace retort::data
