// The run report's pictures of a stage (`retort report`, docs/report.md), written once when the
// stage ends to <run>/pictures/<stage>.safetensors: the confusion matrix of its final test
// evaluation ("confusion" [C, C], row = true class), the first test images and labels ("images",
// "labels"), and what each loss term transfers on them (transfer::Loss::pictures, as
// "<term label>.<name>": FSP's matrices, AT's attention maps, AFT's rho).
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include "models/model.h"
#include "train/evaluate.h"
#include "train/stage_losses.h"
#include "train/trainer.h"

namespace retort {

// How many test images the pictures show.
inline constexpr int64_t kPictureImages = 8;

// Writes the file atomically. A loss term whose pictures fail is left out and reported through
// `warn` (the stage's training is kept either way).
void write_stage_pictures(const std::filesystem::path& file, const StageSpec& stage, models::Model& student,
                          const std::map<std::string, std::shared_ptr<models::Model>>& teachers, StageLosses& losses,
                          const StageDatasets& data, Device device, const EvalResult& final_test,
                          const std::function<void(const std::string&)>& warn);

}  // namespace retort
