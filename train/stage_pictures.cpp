// A stage's pictures for the run report (see train/stage_pictures.h).
#include "train/stage_pictures.h"
#include <fmt/format.h>
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "train/step_log.h"

namespace retort {
namespace {

// The first kPictureImages test images, as the model sees them (the evaluation's transforms).
data::Batch first_test_images(const StageDatasets& data) {
  data::LoaderOptions lo;
  lo.batch_size = std::min<int64_t>(kPictureImages, data.test.size());
  lo.shuffle = false;
  lo.num_workers = 0;
  lo.transforms = data.eval_transforms;
  data::DataLoader loader(data.test, lo);
  loader.start_epoch(0);
  data::Batch batch;
  RETORT_CHECK(loader.next(batch), "the test split is empty");
  return batch;
}

// Every tap the stage's terms read, from each teacher and from the student (eval mode).
std::map<std::string, models::Taps> teacher_taps(const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
                                                 const StageLosses& losses, const Tensor& x) {
  std::map<std::string, models::Taps> out;
  for (const auto& [name, model] : teachers) {
    if (!losses.teacher_taps.count(name)) continue;
    models::Taps taps;
    taps["logits"] = model->forward(x, &taps);
    out[name] = std::move(taps);
  }
  return out;
}

// The confusion matrix as f32 [C, C] (counts).
Tensor confusion_tensor(const EvalResult& r) {
  const std::vector<double> counts(r.confusion.begin(), r.confusion.end());
  return Tensor::from_vector(counts, {r.classes, r.classes}, DType::f32);
}

}  // namespace

void write_stage_pictures(const std::filesystem::path& file, const StageSpec& stage, models::Model& student,
                          const std::map<std::string, std::shared_ptr<models::Model>>& teachers, StageLosses& losses,
                          const StageDatasets& data, Device device, const EvalResult& final_test,
                          const std::function<void(const std::string&)>& warn) {
  NoGradGuard no_grad;
  const data::Batch batch = first_test_images(data);
  const Tensor x = batch.images_tensor(device);
  const Tensor y = data.labelled ? batch.labels_tensor(device) : Tensor();
  const bool was_training = student.is_training();
  student.eval();
  for (auto& l : losses.losses) l->train(false);
  const std::map<std::string, models::Taps> tteachers = teacher_taps(teachers, losses, x);
  models::Taps staps;
  staps["logits"] = student.forward(x, &staps);
  student.train(was_training);

  nn::NamedTensors out;
  out.push_back({"images", x.to(Device::cpu()).contiguous()});
  if (y.defined()) out.push_back({"labels", y.to(Device::cpu()).contiguous()});
  if (!final_test.confusion.empty()) out.push_back({"confusion", confusion_tensor(final_test)});
  const transfer::StepInputs in{x, y, &staps, &tteachers, nullptr, 0, {}};
  const std::vector<std::string> labels = term_labels(stage);
  for (size_t i = 0; i < losses.losses.size(); ++i) {
    try {
      for (const auto& [name, t] : losses.losses[i]->pictures(in))
        out.push_back({labels[i] + "." + name, t.detach().to(DType::f32).to(Device::cpu()).contiguous()});
    } catch (const Error& e) {
      warn(fmt::format("stage '{}': no pictures of loss '{}' in the report: {}", stage.name, labels[i], e.what()));
    }
  }
  std::filesystem::create_directories(file.parent_path());
  write_safetensors(file.string(), out, {{"stage", stage.name}, {"model", stage.train}});
}

}  // namespace retort
