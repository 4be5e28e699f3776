// `retort report` (see apps/report_command.h).
#include "apps/report_command.h"
#include <cstdio>
#include <filesystem>
#include "train/report_html.h"
#include "train/run_dir.h"

namespace retort::cli {

CLI::App* add_report_command(CLI::App& app, ReportArgs& a) {
  auto* cmd = app.add_subcommand("report",
                                 "Write one self-contained HTML page (charts, tables, pictures) of one or several "
                                 "run directories; several runs are also compared (mean ± std across seeds)");
  cmd->add_option("run_dirs", a.run_dirs, "Run directories (as `retort run --out` wrote them)")->required();
  cmd->add_option("-o,--out", a.out, "The HTML file to write (default: <first RUN_DIR>/report.html)");
  return cmd;
}

int cmd_report(const ReportArgs& a) {
  std::vector<report::RunData> runs;
  for (const auto& dir : a.run_dirs) runs.push_back(report::read_run_dir(dir));
  const std::filesystem::path out =
      a.out.empty() ? std::filesystem::path(a.run_dirs[0]) / "report.html" : std::filesystem::path(a.out);
  write_file_atomic(out, report::report_html(runs));
  std::printf("report: %s (%zu run%s)\n", out.string().c_str(), runs.size(), runs.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace retort::cli
