// Image-folder datasets: root/<class_name>/*.png|jpg|jpeg|bmp, classes sorted by name, every
// image decoded to the requested channels and resized to height x width.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "engine/data/dataset.h"

namespace retort::data {

// The class folder names under root (non-hidden directories), sorted: the class order.
std::vector<std::string> list_class_folders(const std::string& root);

Dataset load_image_folder(const std::string& root, int64_t channels, int64_t height, int64_t width,
                          std::string name = "");

// Every image file in or below `root` (any layout, sorted by path), decoded to channels x
// height x width u8 pixels, back to back; `count` receives how many. For unlabelled transfer data.
std::vector<uint8_t> load_unlabelled_images(const std::string& root, int64_t channels, int64_t height, int64_t width,
                                            int64_t& count);

}  // namespace retort::data
