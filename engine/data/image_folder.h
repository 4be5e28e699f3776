// Image-folder datasets: root/<class_name>/*.png|jpg|jpeg|bmp, classes sorted by name, every
// image decoded to the requested channels and resized to height x width.
#pragma once
#include <string>
#include "engine/data/dataset.h"

namespace retort::data {

Dataset load_image_folder(const std::string& root, int64_t channels, int64_t height, int64_t width,
                          std::string name = "");

}  // namespace retort::data
