// retort_logits: the retort side of check_student.py. Loads a model's weights exactly as
// `retort eval` does (same dataset loading, same normalisation, eval mode), runs the first
// --count test images and writes their logits and labels to a safetensors file that
// check_student.py compares with PyTorch's logits for the same weights.
//   retort_logits --model resnet8 --weights runs/x/models/student.safetensors --out logits.safetensors
#include <CLI/CLI.hpp>
#include <cstdio>
#include "engine/autograd.h"
#include "engine/data/loader.h"
#include "engine/data/registry.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "models/registry.h"

namespace retort {
std::map<std::string, Tensor> load_model_weights(const std::string& path);  // train/runner.cpp
}

using namespace retort;

int main(int argc, char** argv) {
  CLI::App app{"Write retort's logits for the first test images (for bench/torch_reference/check_student.py)"};
  std::string arch, weights, out, dataset = "fashion-mnist", root;
  int64_t count = 1000, batch_size = 250, depth = 0, patch_size = 0;
  app.add_option("--model", arch, "Architecture (see `retort list models`)")->required();
  app.add_option("--weights", weights, "safetensors model state dict or retort checkpoint")->required();
  app.add_option("--out", out, "Output safetensors file (logits f32 [N, classes], labels i64 [N])")->required();
  app.add_option("--data", dataset, "Dataset name");
  app.add_option("--root", root, "Dataset directory (default: the dataset's own)");
  app.add_option("--count", count, "Number of test images (0: all)");
  app.add_option("--batch-size", batch_size, "Batch size");
  app.add_option("--depth", depth, "ViT blocks, as the recipe's model option (0: the default)");
  app.add_option("--patch-size", patch_size, "ViT patch size, as the recipe's model option (0: the default)");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto& info = data::dataset_info(dataset);
    data::DatasetRequest req;
    req.name = dataset;
    req.dir = root;
    req.train = false;
    req.channels = info.channels > 0 ? info.channels : 3;
    req.height = req.width = info.height > 0 ? info.height : 32;
    auto test = std::make_shared<const data::Dataset>(data::load_dataset(req));
    models::ModelConfig cfg;
    cfg.in_channels = test->channels;
    cfg.num_classes = test->num_classes;
    cfg.image_size = req.height;
    cfg.depth = depth;
    cfg.patch_size = patch_size;
    auto model = models::create_model(arch, cfg);
    model->load_state_dict(load_model_weights(weights), true);
    model->eval();
    data::LoaderOptions lo;
    lo.batch_size = batch_size;
    lo.shuffle = false;
    if (!info.mean.empty()) lo.transforms.push_back(data::normalize_transform(info.mean, info.std));
    data::DataLoader loader(data::DatasetView(test), lo);
    NoGradGuard no_grad;
    std::vector<Tensor> logits, labels;
    int64_t n = 0;
    loader.start_epoch(0);
    data::Batch batch;
    while ((count == 0 || n < count) && loader.next(batch)) {
      Tensor x = batch.images_tensor(Device::cpu()), y = batch.labels_tensor(Device::cpu());
      logits.push_back(model->forward(x, nullptr));
      labels.push_back(y);
      n += x.size(0);
    }
    Tensor all_logits = concat(logits, 0), all_labels = concat(labels, 0);
    if (count > 0 && all_logits.size(0) > count) {
      all_logits = all_logits.slice(0, 0, count).contiguous();
      all_labels = all_labels.slice(0, 0, count).contiguous();
    }
    write_safetensors(out, {{"logits", all_logits}, {"labels", all_labels}}, {{"arch", arch}, {"weights", weights}});
    std::printf("%s: logits %s for %s\n", out.c_str(), all_logits.str().c_str(), arch.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "retort_logits: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
