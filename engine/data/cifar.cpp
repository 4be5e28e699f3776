// CIFAR binary parsing: fixed-size records, label range checks, class names.
#include "engine/data/cifar.h"
#include <filesystem>
#include "engine/data/byte_file.h"
#include "engine/error.h"

namespace retort::data {
namespace {
constexpr int64_t kPixels = 3 * 32 * 32;

std::string resolve_dir(const std::string& dir, int num_classes) {
  namespace fs = std::filesystem;
  const std::string probe = num_classes == 10 ? "test_batch.bin" : "test.bin";
  const std::string sub = num_classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary";
  if (fs::exists(fs::path(dir) / sub / probe) && !fs::exists(fs::path(dir) / probe)) return (fs::path(dir) / sub).string();
  return dir;
}
}  // namespace

void append_cifar_file(const std::string& path, int num_classes, Dataset& into) {
  RETORT_CHECK(num_classes == 10 || num_classes == 100, "load_cifar: num_classes must be 10 or 100, got {}", num_classes);
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const int64_t label_bytes = num_classes == 10 ? 1 : 2;
  const int64_t record = label_bytes + kPixels;
  const char* layout = num_classes == 10 ? "1 label byte + 3072 pixel bytes" : "coarse byte + fine byte + 3072 pixel bytes";
  const int64_t size = int64_t(bytes.size());
  RETORT_CHECK(size > 0, "{}: file is empty, expected CIFAR-{} records of {} bytes ({})", path, num_classes, record, layout);
  RETORT_CHECK(size % record == 0,
               "{}: file ends at byte {} inside record {} (which starts at byte {}); CIFAR-{} records are {} bytes ({})",
               path, size, size / record, (size / record) * record, num_classes, record, layout);
  const int64_t n = size / record;
  into.images.reserve(into.images.size() + size_t(n * kPixels));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = i * record;
    if (num_classes == 100)
      RETORT_CHECK(bytes[size_t(at)] < 20, "{}: byte {}: coarse label {} of record {} is out of range, expected < 20", path,
                   at, bytes[size_t(at)], i);
    const int64_t label_at = at + label_bytes - 1;
    const int64_t label = bytes[size_t(label_at)];
    RETORT_CHECK(label < num_classes, "{}: byte {}: label {} of record {} is out of range, expected < {}", path, label_at,
                 label, i, num_classes);
    into.labels.push_back(label);
    into.images.insert(into.images.end(), bytes.begin() + at + label_bytes, bytes.begin() + at + record);
  }
}

Dataset load_cifar(const std::string& dir_in, int num_classes, bool train) {
  RETORT_CHECK(num_classes == 10 || num_classes == 100, "load_cifar: num_classes must be 10 or 100, got {}", num_classes);
  RETORT_CHECK(std::filesystem::is_directory(dir_in),
               "cifar{}: directory {} does not exist (unpack the CIFAR binary version there)", num_classes, dir_in);
  const std::string dir = resolve_dir(dir_in, num_classes);
  std::vector<std::string> files;
  if (num_classes == 10) {
    if (train)
      for (int k = 1; k <= 5; ++k) files.push_back(fmt::format("data_batch_{}.bin", k));
    else
      files.push_back("test_batch.bin");
  } else {
    files.push_back(train ? "train.bin" : "test.bin");
  }
  Dataset ds;
  ds.name = fmt::format("cifar{}/{}", num_classes, train ? "train" : "test");
  ds.channels = 3, ds.height = 32, ds.width = 32;
  ds.num_classes = num_classes;
  ds.class_names = num_classes == 10 ? cifar10_class_names() : cifar100_class_names();
  for (const auto& f : files) append_cifar_file((std::filesystem::path(dir) / f).string(), num_classes, ds);
  ds.validate();
  return ds;
}

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

const std::vector<std::string>& cifar100_class_names() {
  static const std::vector<std::string> names = {
      "apple",      "aquarium_fish", "baby",         "bear",       "beaver",      "bed",       "bee",       "beetle",
      "bicycle",    "bottle",        "bowl",         "boy",        "bridge",      "bus",       "butterfly", "camel",
      "can",        "castle",        "caterpillar",  "cattle",     "chair",       "chimpanzee", "clock",    "cloud",
      "cockroach",  "couch",         "crab",         "crocodile",  "cup",         "dinosaur",  "dolphin",   "elephant",
      "flatfish",   "forest",        "fox",          "girl",       "hamster",     "house",     "kangaroo",  "keyboard",
      "lamp",       "lawn_mower",    "leopard",      "lion",       "lizard",      "lobster",   "man",       "maple_tree",
      "motorcycle", "mountain",      "mouse",        "mushroom",   "oak_tree",    "orange",    "orchid",    "otter",
      "palm_tree",  "pear",          "pickup_truck", "pine_tree",  "plain",       "plate",     "poppy",     "porcupine",
      "possum",     "rabbit",        "raccoon",      "ray",        "road",        "rocket",    "rose",      "sea",
      "seal",       "shark",         "shrew",        "skunk",      "skyscraper",  "snail",     "snake",     "spider",
      "squirrel",   "streetcar",     "sunflower",    "sweet_pepper", "table",     "tank",      "telephone", "television",
      "tiger",      "tractor",       "train",        "trout",      "tulip",       "turtle",    "wardrobe",  "whale",
      "willow_tree", "wolf",         "woman",        "worm"};
  return names;
}

}  // namespace retort::data
