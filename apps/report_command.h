// `retort report RUN_DIR [RUN_DIR...] [-o FILE]`: one self-contained HTML page of one or several
// run directories (train/report_html.h), written atomically (default <first RUN_DIR>/report.html);
// --charts DIR also writes each chart as an SVG file (train/report_export.h).
#pragma once
#include <string>
#include <vector>
#include <CLI/CLI.hpp>

namespace retort::cli {

struct ReportArgs {
  std::vector<std::string> run_dirs;
  std::string out;
  std::string charts_dir;  // --charts: every chart also as a standalone SVG file here
};
CLI::App* add_report_command(CLI::App& app, ReportArgs& args);
int cmd_report(const ReportArgs& args);

}  // namespace retort::cli
