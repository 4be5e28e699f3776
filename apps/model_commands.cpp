// `retort eval`, `retort import` and `retort export` (see apps/model_commands.h).
#include "apps/model_commands.h"
#include <cstdio>
#include "engine/autograd.h"
#include "engine/data/loader.h"
#include "engine/data/preprocess.h"
#include "engine/data/registry.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/import_weights.h"
#include "models/input_adapter.h"
#include "models/onnx_export.h"
#include "models/registry.h"
#include "train/evaluate.h"

namespace retort::cli {
namespace {

void to_stderr(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

std::vector<double> doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// "1x32x32, shorter side resized to 36 (bicubic) and centre-cropped, normalised by mean [...] std [...]"
std::string describe_input(const ModelInput& in) {
  const std::string size = fmt::format("{}x{}x{}", in.channels, in.image_size, in.image_size);
  const std::string resize = in.resize > 0 ? fmt::format("shorter side resized to {} ({}) and centre-cropped", in.resize,
                                                         in.interpolation)
                                           : fmt::format("resized to fit ({})", in.interpolation);
  const std::string norm = in.mean.empty() ? "not normalised"
                                           : fmt::format("normalised by mean [{:.4g}] std [{:.4g}]",
                                                         fmt::join(in.mean, ", "), fmt::join(in.std, ", "));
  return fmt::format("{}, {}, {}", size, resize, norm);
}

// The test split of `dataset`, decoded as the model's input says (image folders are resized and
// centre-cropped as they are decoded; the other datasets keep their own size).
std::shared_ptr<const data::Dataset> test_split(const EvalArgs& a, const ModelInput& in) {
  data::DatasetRequest req;
  req.name = a.dataset;
  req.dir = a.root;
  req.train = false;
  req.channels = in.channels;
  req.height = req.width = in.image_size;
  req.resize_shorter = in.resize;
  req.interpolation = data::parse_interpolation(in.interpolation);
  return std::make_shared<const data::Dataset>(data::load_dataset(req));
}

// The model's classes against the data's: their count, and their names when both are known.
void check_classes(const OpenedModel& m, const data::Dataset& test) {
  const int64_t classes = m.model->config().num_classes;
  RETORT_CHECK(classes == test.num_classes, "the model has {} classes but {} has {}: labels would not match",
               classes, test.name, test.num_classes);
  const auto& names = m.input.class_names;
  RETORT_CHECK(names.empty() || test.class_names.empty() || names == test.class_names,
               "the model was trained on classes [{}] but {} has [{}]: labels would not match",
               fmt::join(names, ", "), test.name, fmt::join(test.class_names, ", "));
}

// Every test image as the model saw it, its logits and its label, in one safetensors file
// (bench/onnx/compare_onnxruntime.py runs the same images through onnxruntime).
void write_dump(const std::string& path, models::Model& model, data::DataLoader& loader, Device device,
                const StringMap& metadata) {
  NoGradGuard no_grad;
  model.eval();
  std::vector<Tensor> images, logits, labels;
  loader.start_epoch(0);
  data::Batch batch;
  while (loader.next(batch)) {
    const Tensor x = batch.images_tensor(device);
    logits.push_back(model.forward(x, nullptr).to(Device::cpu()));
    images.push_back(x.to(Device::cpu()));
    labels.push_back(batch.labels_tensor());
  }
  RETORT_CHECK(!images.empty(), "--dump: the test split holds no images");
  write_safetensors(path, {{"images", concat(images, 0)}, {"logits", concat(logits, 0)}, {"labels", concat(labels, 0)}},
                    metadata);
}

}  // namespace

CLI::App* add_eval_command(CLI::App& app, EvalArgs& a) {
  auto* eval = app.add_subcommand("eval", "Evaluate a model file on a test split, fed as the model was trained");
  add_model_options(eval, a.model, /*input=*/true);
  eval->add_option("--data", a.dataset, "Dataset name (see `retort list datasets`)");
  eval->add_option("--root", a.root, "Dataset directory (default: the dataset's own)");
  eval->add_option("--device", a.device, "auto | cpu | cuda | cuda:N");
  eval->add_option("--batch-size", a.batch, "Evaluation batch size")->check(CLI::PositiveNumber);
  eval->add_option("--dump", a.dump, "Also write the test images as fed, the logits and the labels to this "
                                     "safetensors file (bench/onnx/compare_onnxruntime.py reads it)");
  return eval;
}

int cmd_eval(const EvalArgs& a) {
  const Device device = resolve_device(a.device);
  const data::DatasetInfo& info = data::dataset_info(a.dataset);
  OpenedModel m = open_model(a.model, doubles(info.mean), doubles(info.std), to_stderr);
  std::shared_ptr<const data::Dataset> test = test_split(a, m.input);
  check_classes(m, *test);
  std::fprintf(stderr, "input: %s (%s)\n", describe_input(m.input).c_str(),
               m.input_from_file ? "as the model file says" : "the file does not say: defaults and options");
  m.model->to(device);
  data::LoaderOptions lo;
  lo.batch_size = a.batch;
  lo.shuffle = false;
  lo.transforms = input_transforms(m.input, test->height, test->width, /*decoded_preprocessed=*/a.dataset == "folder");
  data::DataLoader loader(data::DatasetView(test), lo);
  EvalResult r = evaluate(*m.model, loader, device);
  std::printf("%s on %s test (%lld images): top1 %.2f%%  top5 %.2f%%  loss %.4f  (%.0f images/s on %s)\n",
              m.arch.c_str(), a.dataset.c_str(), (long long)r.images, r.top1, r.top5, r.loss, r.images_per_s,
              device.str().c_str());
  if (!a.dump.empty()) {
    write_dump(a.dump, *m.model, loader, device, opened_model_metadata(m));
    std::fprintf(stderr, "dump: %s\n", a.dump.c_str());
  }
  if (r.finite()) return 0;
  std::fprintf(stderr,
               "retort: warning: %lld of %lld images gave non-finite logits (NaN or infinity; counted as misses) and "
               "the loss is %g: the weights in %s hold non-finite values or overflow\n",
               (long long)r.nonfinite_rows, (long long)r.images, r.loss, a.model.weights.c_str());
  return 4;
}

CLI::App* add_import_command(CLI::App& app, ImportArgs& a) {
  auto* imp = app.add_subcommand("import", "Load torchvision ResNet / timm ViT safetensors weights into a retort model");
  imp->add_option("--model", a.arch, "Architecture: resnet18/34/50, vit_tiny/small/base or vit_<size>_patch<P>_<S>")
      ->required();
  imp->add_option("--weights", a.weights, "safetensors file with torchvision/timm names")->required();
  imp->add_option("--out", a.out, "Write the loaded model here (retort/PyTorch names, f32)");
  imp->add_option("--image-size", a.image_size, "Input size of the model (ViT: pos_embed is resampled to it)")
      ->check(CLI::NonNegativeNumber);
  imp->add_option("--num-classes", a.num_classes, "Classes (default: the file's classifier)")
      ->check(CLI::NonNegativeNumber);
  imp->add_option("--head", a.head, "The file's classifier: keep (load it), reset (a fresh head of --num-classes "
                                    "outputs for a new task) or drop (no classifier: a feature extractor)")
      ->check(CLI::IsMember({"keep", "reset", "drop"}));
  imp->add_flag("--non-strict", a.non_strict, "Warn about missing/unexpected names instead of failing");
  return imp;
}

// Loads torchvision/timm weights into a retort model (strict unless asked), reports what was
// loaded, converted, resampled and left out, and writes the model's own state dict to --out.
int cmd_import(const ImportArgs& a) {
  const models::HeadPolicy head = models::parse_head_policy(a.head);
  RETORT_CHECK(head != models::HeadPolicy::reset || a.num_classes > 0,
               "--head reset makes a fresh classifier for a new task: give its classes with --num-classes N");
  RETORT_CHECK(head != models::HeadPolicy::drop || a.num_classes == 0,
               "--head drop builds the model without a classifier: --num-classes {} contradicts it (use --head reset)",
               a.num_classes);
  models::StoredState state = models::read_model_state(a.weights);
  models::ImportTarget target = models::import_target(a.arch, state, a.image_size, head == models::HeadPolicy::drop ? 1 : a.num_classes);
  models::ModelConfig& c = target.config;
  if (head == models::HeadPolicy::drop) c.num_classes = 0;
  std::fprintf(stderr, "import: %s (%s, %lld channels, %lld classes, image %lld%s)\n", a.arch.c_str(),
               target.arch.c_str(), (long long)c.in_channels, (long long)c.num_classes, (long long)c.image_size,
               c.patch_size > 0 ? fmt::format(", patch {}, depth {}", c.patch_size, c.depth).c_str() : "");
  auto model = models::create_model(target.arch, c);
  models::ImportOptions opts;
  opts.strict = !a.non_strict;
  opts.head = head;
  models::ImportReport report = models::load_weights(*model, state, a.weights, opts);
  for (const auto& line : report.lines()) to_stderr(line);
  if (a.out.empty()) {
    to_stderr("import: the weights fit; pass --out FILE to write retort's model file");
    return 0;
  }
  StringMap metadata = model_file_metadata(target.arch, model->config(), std::nullopt);
  metadata["imported_from"] = a.weights;
  metadata["head"] = a.head;
  write_safetensors(a.out, model->state_dict(), metadata);
  std::printf("%s\n", a.out.c_str());
  return 0;
}

CLI::App* add_export_command(CLI::App& app, ExportArgs& a) {
  auto* exp = app.add_subcommand("export", "Write a model file as ONNX (checked by ONNX's checker) or as a "
                                           "PyTorch-loadable safetensors file that names its architecture");
  add_model_options(exp, a.model, /*input=*/true);
  exp->add_option("--onnx", a.onnx, "ONNX file to write: input 'images' [batch, C, H, W] (normalised), output "
                                    "'logits'; the preprocessing is in its metadata");
  exp->add_option("--safetensors", a.safetensors, "safetensors file to write: the state dict under PyTorch names, "
                                                  "with the architecture, configuration and input in its metadata");
  exp->add_option("--opset", a.opset, "ONNX opset (17 or newer the linked ONNX library knows)");
  return exp;
}

int cmd_export(const ExportArgs& a) {
  RETORT_CHECK(!a.onnx.empty() || !a.safetensors.empty(), "export: give --onnx FILE and/or --safetensors FILE");
  OpenedModel m = open_model(a.model, {}, {}, to_stderr);
  RETORT_CHECK(m.model->has_classifier(), "export: {} has no classifier (its head was dropped)", a.model.weights);
  StringMap metadata = opened_model_metadata(m);
  metadata["exported_from"] = a.model.weights;
  std::fprintf(stderr, "input: %s\n", describe_input(m.input).c_str());
  if (!a.onnx.empty()) {
    models::OnnxExportOptions options;
    options.opset = a.opset;
    options.metadata = {metadata.begin(), metadata.end()};
    const auto& c = m.model->config();
    if (m.model->input_adapter())
      std::fprintf(stderr, "note: the ONNX model takes its own input, %lldx%lldx%lld; training fed it %s, which the "
                           "file leaves to the caller\n", (long long)c.in_channels, (long long)c.image_size,
                   (long long)c.image_size, m.model->input_adapter()->describe().c_str());
    m.model->set_input_adapter(nullptr);  // the network alone
    models::export_onnx(*m.model, {1, c.in_channels, c.image_size, c.image_size}, a.onnx, options);
    std::fprintf(stderr, "onnx checker: %s\n", models::check_onnx_file(a.onnx).c_str());
    std::printf("%s\n", a.onnx.c_str());
  }
  if (!a.safetensors.empty()) {
    metadata["format"] = "pytorch state_dict (torchvision / RepDistiller / timm names): docs/own_data.md";
    write_safetensors(a.safetensors, m.model->state_dict(), metadata);
    std::printf("%s\n", a.safetensors.c_str());
  }
  return 0;
}

}  // namespace retort::cli
