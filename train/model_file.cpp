// Model files' self-description (see train/model_file.h).
#include "train/model_file.h"
#include <fmt/format.h>
#include "engine/data/preprocess.h"
#include "engine/error.h"

namespace retort {
namespace {

std::string numbers_text(const std::vector<double>& v) { return fmt::format("{:.9g}", fmt::join(v, ",")); }

// "a,b,c" -> [a, b, c]; `key` and `path` name a malformed value.
std::vector<double> numbers_of(const std::string& text, const std::string& key, const std::string& path) {
  std::vector<double> out;
  size_t at = 0;
  while (at <= text.size() && !text.empty()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    try {
      size_t used = 0;
      const std::string part = text.substr(at, comma - at);
      out.push_back(std::stod(part, &used));
      RETORT_CHECK(used == part.size(), "trailing characters");
    } catch (const std::exception&) {
      fail("{}: metadata '{}' = '{}' is not a comma-separated list of numbers", path, key, text);
    }
    at = comma + 1;
  }
  return out;
}

int64_t integer_of(const StringMap& m, const std::string& key, const std::string& path) {
  const std::string& text = m.at(key);
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  fail("{}: metadata '{}' = '{}' is not a whole number >= 0", path, key, text);
}

std::vector<std::string> names_of(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

}  // namespace

ModelInput recipe_model_input(const Recipe& recipe, std::vector<std::string> class_names) {
  const DataSettings& d = recipe.data;
  ModelInput in;
  in.channels = d.channels;
  in.image_size = d.image_size;
  in.resize = d.resize;
  in.interpolation = d.interpolation;
  in.mean = d.mean;
  in.std = d.std;
  in.class_names = std::move(class_names);
  return in;
}

StringMap model_file_metadata(const std::string& arch, const models::ModelConfig& c,
                              const std::optional<ModelInput>& input) {
  StringMap m = {{"arch", arch},
                 {"model.in_channels", std::to_string(c.in_channels)},
                 {"model.num_classes", std::to_string(c.num_classes)},
                 {"model.image_size", std::to_string(c.image_size)},
                 {"model.patch_size", std::to_string(c.patch_size)},
                 {"model.depth", std::to_string(c.depth)}};
  if (!input) return m;
  m["input.channels"] = std::to_string(input->channels);
  m["input.image_size"] = std::to_string(input->image_size);
  m["input.resize"] = std::to_string(input->resize);
  m["input.interpolation"] = input->interpolation;
  m["input.mean"] = numbers_text(input->mean);
  m["input.std"] = numbers_text(input->std);
  if (!input->class_names.empty()) m["input.class_names"] = fmt::format("{}", fmt::join(input->class_names, "\n"));
  return m;
}

ModelFileInfo model_file_info(const StringMap& m, const std::string& path) {
  ModelFileInfo info;
  if (auto it = m.find("arch"); it != m.end()) info.arch = it->second;
  if (m.count("model.num_classes")) {
    models::ModelConfig c;
    c.in_channels = integer_of(m, "model.in_channels", path);
    c.num_classes = integer_of(m, "model.num_classes", path);
    c.image_size = integer_of(m, "model.image_size", path);
    c.patch_size = integer_of(m, "model.patch_size", path);
    c.depth = integer_of(m, "model.depth", path);
    info.config = c;
  }
  if (m.count("input.image_size")) {
    ModelInput in;
    in.channels = integer_of(m, "input.channels", path);
    in.image_size = integer_of(m, "input.image_size", path);
    in.resize = integer_of(m, "input.resize", path);
    in.interpolation = m.at("input.interpolation");
    data::parse_interpolation(in.interpolation);  // a known name, else an error naming the choices
    in.mean = numbers_of(m.at("input.mean"), "input.mean", path);
    in.std = numbers_of(m.at("input.std"), "input.std", path);
    if (auto it = m.find("input.class_names"); it != m.end()) in.class_names = names_of(it->second);
    info.input = in;
  }
  return info;
}

std::vector<data::BatchTransform> input_transforms(const ModelInput& in, int64_t stored_h, int64_t stored_w,
                                                   bool decoded_preprocessed) {
  std::vector<data::BatchTransform> out;
  const bool resized = stored_h != in.image_size || stored_w != in.image_size;
  RETORT_CHECK(!decoded_preprocessed || !resized, "images decoded with preprocessing are {}x{}, not the model's {}x{}",
               stored_h, stored_w, in.image_size, in.image_size);
  if (!decoded_preprocessed && (in.resize > 0 || (resized && in.interpolation != "bilinear"))) {
    data::Preprocess p;
    p.channels = in.channels;
    p.height = p.width = in.image_size;
    p.resize_shorter = in.resize;
    p.interpolation = data::parse_interpolation(in.interpolation);
    out.push_back(data::preprocess_transform(p));
  } else if (!decoded_preprocessed && resized) {
    out.push_back(data::resize_transform(in.image_size, in.image_size));  // bilinear, as it always was
  }
  if (!in.mean.empty())
    out.push_back(data::normalize_transform(std::vector<float>(in.mean.begin(), in.mean.end()),
                                            std::vector<float>(in.std.begin(), in.std.end())));
  return out;
}

}  // namespace retort
