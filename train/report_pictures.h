// The pictures of a stage in `retort report` (train/report_html.h), drawn from
// pictures/<stage>.safetensors (train/report_data.h): the confusion matrix of the final test
// evaluation; for each loss term, teacher/student pairs by shape (2-D: heatmaps side by side and
// their difference, e.g. FSP matrices; 3-D [N, H, W]: maps next to the input images, e.g. AT
// attention) and 1-D tensors as a sorted curve (e.g. AFT's rho).
#pragma once
#include <string>
#include "train/report_data.h"

namespace retort::report {

// The pictures as <figure>s (for the stage's grid of charts); chart IDs start with `id` (e.g.
// "r0.student_kd.confusion").
std::string report_pictures(const Pictures& pictures, const std::string& id, const std::string& dataset);

}  // namespace retort::report
