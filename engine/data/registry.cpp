// Registry entries and dispatch from a dataset name to its reader.
#include "engine/data/registry.h"
#include <filesystem>
#include "engine/data/cifar.h"
#include "engine/data/idx.h"
#include "engine/data/image_folder.h"
#include "engine/error.h"

namespace retort::data {

const std::vector<DatasetInfo>& dataset_registry() {
  static const std::vector<DatasetInfo> entries = {
      {"fashion-mnist", "Fashion-MNIST: 60000 train / 10000 test 28x28 grey images of 10 clothing classes (IDX, gzip)", 10,
       1, 28, 28, {0.2860f}, {0.3530f}, kFashionMnistDefaultDir},
      {"cifar10", "CIFAR-10: 50000 train / 10000 test 32x32 RGB images of 10 classes (binary version)", 10, 3, 32, 32,
       {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, ""},
      {"cifar100", "CIFAR-100: 50000 train / 10000 test 32x32 RGB images of 100 fine classes (binary version)", 100, 3,
       32, 32, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, ""},
      {"folder", "Image folder: root/<class>/*.png|jpg|jpeg|bmp (train/ and test/ or val/ subfolders), resized (and centre-cropped) to HxW, streamed from disk", 0,
       0, 0, 0, {}, {}, ""},
  };
  return entries;
}

const DatasetInfo& dataset_info(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& e : dataset_registry()) {
    if (e.name == name) return e;
    names.push_back(e.name);
  }
  fail("unknown dataset '{}'; known datasets: {}", name, fmt::join(names, ", "));
}

Dataset load_dataset(const DatasetRequest& request) {
  const DatasetInfo& info = dataset_info(request.name);
  const std::string dir = request.dir.empty() ? info.default_dir : request.dir;
  RETORT_CHECK(!dir.empty(), "dataset '{}' has no default location: give its directory", request.name);
  if (request.name == "fashion-mnist") return load_fashion_mnist(dir, request.train);
  if (request.name == "cifar10") return load_cifar(dir, 10, request.train);
  if (request.name == "cifar100") return load_cifar(dir, 100, request.train);
  // folder: dir/train and dir/test|val when present, else dir itself for the training split.
  namespace fs = std::filesystem;
  std::string root = dir;
  if (request.train) {
    if (fs::is_directory(fs::path(dir) / "train")) root = (fs::path(dir) / "train").string();
  } else {
    if (fs::is_directory(fs::path(dir) / "test")) root = (fs::path(dir) / "test").string();
    else if (fs::is_directory(fs::path(dir) / "val")) root = (fs::path(dir) / "val").string();
    else fail("image folder {}: no test/ or val/ subfolder for the test split", dir);
  }
  Dataset ds = load_image_folder(root, request.preprocess(), request.cache_bytes,
                                 fmt::format("folder:{}/{}", fs::path(dir).filename().string(), request.train ? "train" : "test"));
  // Labels are class positions in sorted order: the test split must have the same classes.
  const fs::path train_dir = fs::path(dir) / "train";
  if (!request.train && fs::is_directory(train_dir)) {
    const auto train_classes = list_class_folders(train_dir.string());
    RETORT_CHECK(train_classes == ds.class_names,
                 "image folder {}: {} has classes [{}] but train/ has [{}]; labels would not match", dir, root,
                 fmt::join(ds.class_names, ", "), fmt::join(train_classes, ", "));
  }
  return ds;
}

}  // namespace retort::data
