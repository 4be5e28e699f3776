// The page of `retort report`: one self-contained HTML file (inline CSS and SVG, no network)
// describing one or several run directories (train/report_data.h): a header per run, the
// results table, per stage the training curves (loss terms, learning rate, gradient norm,
// images/s, accuracy, each method's statistics) and pictures (confusion matrix, FSP matrices,
// attention maps, AFT weights), and, for several runs, a comparison of the same recipe's
// stages across runs (mean ± sample standard deviation, overlaid curves).
// Machine-checkable: charts are <svg class="chart" data-chart=ID>, series <polyline
// data-series data-n data-last>, table cells carry data-value; a few lines of inline script
// set <body data-charts=N data-rendered=M> (M: charts whose layout has a non-zero size).
#pragma once
#include <string>
#include <vector>
#include "train/report_data.h"

namespace retort::report {

std::string report_html(const std::vector<RunData>& runs);

}  // namespace retort::report
