// `retort report` (see apps/report_command.h).
#include "apps/report_command.h"
#include <cstdio>
#include <filesystem>
#include "train/report_export.h"
#include "train/report_html.h"
#include "train/run_dir.h"

namespace retort::cli {

CLI::App* add_report_command(CLI::App& app, ReportArgs& a) {
  auto* cmd = app.add_subcommand("report",
                                 "Write one self-contained HTML page (charts, tables, pictures) of one or several "
                                 "run directories; several runs are also compared (mean ± std across seeds)");
  cmd->add_option("run_dirs", a.run_dirs, "Run directories (as `retort run --out` wrote them)")->required();
  cmd->add_option("-o,--out", a.out, "The HTML file to write (default: <first RUN_DIR>/report.html)");
  cmd->add_option("--charts", a.charts_dir, "Also write every chart as a standalone SVG file into this directory");
  return cmd;
}

int cmd_report(const ReportArgs& a) {
  std::vector<report::RunData> runs;
  for (const auto& dir : a.run_dirs) runs.push_back(report::read_run_dir(dir));
  const std::filesystem::path out =
      a.out.empty() ? std::filesystem::path(a.run_dirs[0]) / "report.html" : std::filesystem::path(a.out);
  const std::string html = report::report_html(runs);
  write_file_atomic(out, html);
  std::printf("report: %s (%zu run%s)\n", out.string().c_str(), runs.size(), runs.size() == 1 ? "" : "s");
  if (!a.charts_dir.empty())
    std::printf("charts: %zu SVG files in %s\n", report::write_charts(html, a.charts_dir).size(), a.charts_dir.c_str());
  return 0;
}

}  // namespace retort::cli
