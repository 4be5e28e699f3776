// IDX parsing: 4-byte magic (0, 0, type 0x08 = u8, ndim), ndim big-endian u32 sizes, data.
#include "engine/data/idx.h"
#include <filesystem>
#include "engine/data/byte_file.h"
#include "engine/error.h"

namespace retort::data {
namespace {

// Checks magic and header size; returns the dims.
std::vector<int64_t> parse_idx_header(const std::string& path, const std::vector<uint8_t>& bytes, int ndim,
                                      const char* what) {
  const uint32_t want_magic = 0x00000800u | uint32_t(ndim);
  RETORT_CHECK(bytes.size() >= 4, "{}: file ends at byte {} but an IDX file starts with a 4-byte magic (expected 0x{:08x}, {})",
               path, bytes.size(), want_magic, what);
  const uint32_t magic = read_be32(bytes, 0);
  RETORT_CHECK(magic == want_magic, "{}: byte 0: bad magic 0x{:08x}, expected 0x{:08x} ({})", path, magic, want_magic,
               what);
  const size_t header = 4 + 4 * size_t(ndim);
  RETORT_CHECK(bytes.size() >= header, "{}: file ends at byte {} but the IDX header of {} needs {} bytes", path,
               bytes.size(), what, header);
  std::vector<int64_t> dims(static_cast<size_t>(ndim));
  for (int d = 0; d < ndim; ++d) dims[size_t(d)] = int64_t(read_be32(bytes, 4 + 4 * size_t(d)));
  return dims;
}

void check_payload(const std::string& path, size_t have, size_t header, size_t payload, const std::string& desc) {
  RETORT_CHECK(have >= header + payload, "{}: file ends at byte {} but the header promises {} bytes ({})", path, have,
               header + payload, desc);
  RETORT_CHECK(have == header + payload, "{}: byte {}: {} unexpected trailing bytes after the {} bytes the header promises ({})",
               path, header + payload, have - header - payload, header + payload, desc);
}

}  // namespace

IdxImages load_idx_images(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  auto dims = parse_idx_header(path, bytes, 3, "IDX u8 3-d images");
  IdxImages out;
  out.count = dims[0], out.rows = dims[1], out.cols = dims[2];
  RETORT_CHECK(out.rows > 0 && out.cols > 0, "{}: byte 8: image size {}x{}, expected both sides > 0", path, out.rows,
               out.cols);
  size_t payload = 0;
  const bool overflow = __builtin_mul_overflow(size_t(out.count), size_t(out.rows) * size_t(out.cols), &payload);
  RETORT_CHECK(!overflow, "{}: byte 4: header promises {} images of {}x{}, more bytes than can exist", path, out.count,
               out.rows, out.cols);
  check_payload(path, bytes.size(), 16, payload, fmt::format("{} images of {}x{}", out.count, out.rows, out.cols));
  out.pixels.assign(bytes.begin() + 16, bytes.end());
  return out;
}

std::vector<int64_t> load_idx_labels(const std::string& path, int64_t num_classes) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  auto dims = parse_idx_header(path, bytes, 1, "IDX u8 1-d labels");
  const size_t count = size_t(dims[0]);
  check_payload(path, bytes.size(), 8, count, fmt::format("{} labels", count));
  std::vector<int64_t> labels(count);
  for (size_t i = 0; i < count; ++i) {
    const int64_t v = bytes[8 + i];
    RETORT_CHECK(v < num_classes, "{}: byte {}: label {} is out of range, expected < {} (entry {} of {})", path, 8 + i,
                 v, num_classes, i, count);
    labels[i] = v;
  }
  return labels;
}

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int64_t num_classes,
                         std::string name, std::vector<std::string> class_names) {
  IdxImages img = load_idx_images(images_path);
  std::vector<int64_t> labels = load_idx_labels(labels_path, num_classes);
  RETORT_CHECK(int64_t(labels.size()) == img.count, "{}: {} labels but {} has {} images; the two files do not belong together",
               labels_path, labels.size(), base_name(images_path), img.count);
  Dataset ds;
  ds.name = std::move(name);
  ds.images = std::move(img.pixels);
  ds.labels = std::move(labels);
  ds.channels = 1, ds.height = img.rows, ds.width = img.cols;
  ds.num_classes = num_classes;
  ds.class_names = std::move(class_names);
  if (ds.class_names.empty())
    for (int64_t c = 0; c < num_classes; ++c) ds.class_names.push_back(std::to_string(c));
  ds.validate();
  return ds;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

Dataset load_fashion_mnist(const std::string& dir, bool train) {
  RETORT_CHECK(std::filesystem::is_directory(dir),
               "fashion-mnist: directory {} does not exist (install dataset-fashion-mnist or pass the directory holding "
               "train-images-idx3-ubyte.gz)", dir);
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    std::filesystem::path p = std::filesystem::path(dir) / (stem + ".gz");
    if (std::filesystem::exists(p)) return p.string();
    std::filesystem::path plain = std::filesystem::path(dir) / stem;
    if (std::filesystem::exists(plain)) return plain.string();
    return p.string();  // missing: the reader's error names the expected .gz file
  };
  Dataset ds = load_idx_dataset(find(prefix + "-images-idx3-ubyte"), find(prefix + "-labels-idx1-ubyte"), 10,
                                train ? "fashion-mnist/train" : "fashion-mnist/test", fashion_mnist_class_names());
  RETORT_CHECK(ds.height == 28 && ds.width == 28, "fashion-mnist in {}: images are {}x{}, expected 28x28", dir,
               ds.height, ds.width);
  return ds;
}

}  // namespace retort::data
