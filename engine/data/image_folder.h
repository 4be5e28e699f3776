// Image-folder datasets: root/<class_name>/*.png|jpg|jpeg|bmp, classes sorted by name, every
// image decoded to the requested channels and resized to height x width.
#pragma once
#include <string>
#include <vector>
#include "engine/data/dataset.h"

namespace retort::data {

// The class folder names under root (non-hidden directories), sorted: the class order.
std::vector<std::string> list_class_folders(const std::string& root);

Dataset load_image_folder(const std::string& root, int64_t channels, int64_t height, int64_t width,
                          std::string name = "");

}  // namespace retort::data
