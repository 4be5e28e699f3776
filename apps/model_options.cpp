// The model of `retort eval` / `retort export` from its weights file and options (see
// apps/model_options.h).
#include "apps/model_options.h"
#include "engine/error.h"
#include "models/import_weights.h"
#include "models/input_adapter.h"
#include "models/registry.h"

namespace retort::cli {

void add_model_options(CLI::App* command, ModelArgs& a, bool input) {
  command->add_option("--weights", a.weights, "safetensors file: a model file of a run, an import, or a checkpoint")
      ->required();
  command->add_option("--model", a.arch, "Architecture, e.g. resnet20 (default: what the file says)");
  command->add_option("--num-classes", a.num_classes, "Classifier outputs (default: the file's)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--image-size", a.image_size, "Input size (default: the file's)")->check(CLI::NonNegativeNumber);
  command->add_option("--channels", a.channels, "Input channels (default: the file's)")->check(CLI::NonNegativeNumber);
  command->add_option("--patch-size", a.patch_size, "ViT patch size (default: the file's)")->check(CLI::NonNegativeNumber);
  command->add_option("--depth", a.depth, "ViT depth (default: the file's)")->check(CLI::NonNegativeNumber);
  if (!input) return;
  command->add_option("--resize", a.resize, "Resize the shorter side to this, then centre-crop --image-size "
                                            "(0: resize straight; default: as the model was trained)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--interpolation", a.interpolation, "nearest | bilinear | bicubic (default: as trained)")
      ->check(CLI::IsMember({"nearest", "bilinear", "bicubic"}));
  command->add_option("--mean", a.mean, "Per-channel mean of [0, 1] pixels (default: as trained, else the dataset's)");
  command->add_option("--std", a.std, "Per-channel standard deviation (default: as trained, else the dataset's)");
}

namespace {

// The architecture and configuration: the file's when it says (a retort run's model file), else
// what its tensors show (torchvision/timm files: models/import_weights.h); options override either.
models::ImportTarget model_target(const ModelArgs& a, const models::StoredState& state, const ModelFileInfo& info) {
  const std::string arch = !a.arch.empty() ? a.arch : info.arch;
  RETORT_CHECK(!arch.empty(), "{} does not say which architecture it holds: give --model ARCH (`retort list models`)",
               a.weights);
  models::ImportTarget t;
  if (info.config && (a.arch.empty() || a.arch == info.arch)) {
    t.arch = arch;
    t.config = *info.config;
  } else {
    t = models::import_target(arch, state, a.image_size, a.num_classes);
  }
  if (a.num_classes > 0) t.config.num_classes = a.num_classes;
  if (a.image_size > 0) t.config.image_size = a.image_size;
  if (a.channels > 0) t.config.in_channels = a.channels;
  if (a.patch_size > 0) t.config.patch_size = a.patch_size;
  if (a.depth > 0) t.config.depth = a.depth;
  RETORT_CHECK(models::is_known_model(t.arch), "{}: unknown architecture '{}' (`retort list models`)", a.weights, t.arch);
  return t;
}

// How the model is fed: the file's input, else the model's size and the defaults; options override.
ModelInput model_input(const ModelArgs& a, const ModelFileInfo& info, const models::ModelConfig& c,
                       const std::vector<double>& default_mean, const std::vector<double>& default_std) {
  ModelInput in = info.input.value_or(ModelInput{});
  if (!info.input) {  // fed at its own size
    in.channels = c.in_channels;
    in.image_size = c.image_size;
  }
  if (a.resize >= 0) in.resize = a.resize;
  if (!a.interpolation.empty()) in.interpolation = a.interpolation;
  if (!a.mean.empty()) in.mean = a.mean;
  if (!a.std.empty()) in.std = a.std;
  if (in.mean.empty() && in.std.empty()) {
    in.mean = default_mean;
    in.std = default_std;
  }
  // one value per channel, or one for all
  const auto fits = [&](const std::vector<double>& v) { return v.empty() || v.size() == 1 || int64_t(v.size()) == c.in_channels; };
  RETORT_CHECK(fits(in.mean) && fits(in.std) && in.mean.size() == in.std.size(),
               "--mean and --std need one value per channel ({}) or one for all; got {} and {}", c.in_channels,
               in.mean.size(), in.std.size());
  for (double s : in.std) RETORT_CHECK(s > 0, "--std values must be positive, got {}", s);
  return in;
}

}  // namespace

OpenedModel open_model(const ModelArgs& a, const std::vector<double>& default_mean,
                       const std::vector<double>& default_std, const std::function<void(const std::string&)>& log) {
  const models::StoredState state = models::read_model_state(a.weights);
  const ModelFileInfo info = model_file_info(state.metadata, a.weights);
  const models::ImportTarget target = model_target(a, state, info);
  OpenedModel out;
  out.arch = target.arch;
  out.model = models::create_model(target.arch, target.config);
  models::ImportReport report = models::load_weights(*out.model, state, a.weights);
  if (log)
    for (const auto& line : report.lines()) log(line);
  out.input = model_input(a, info, out.model->config(), default_mean, default_std);
  out.input_from_file = info.input.has_value();
  const models::ModelConfig& c = out.model->config();
  if (out.input.channels != c.in_channels || out.input.image_size != c.image_size)  // trained through an adapter
    out.model->set_input_adapter(std::make_shared<models::InputAdapter>(
        out.input.channels, out.input.image_size, c.in_channels, c.image_size,
        data::parse_interpolation(out.input.interpolation)));
  return out;
}

StringMap opened_model_metadata(const OpenedModel& opened) {
  return model_file_metadata(opened.arch, opened.model->config(), opened.input);
}

}  // namespace retort::cli
