// Standalone SVG files of a report's charts (see train/report_export.h).
#include "train/report_export.h"
#include <cctype>
#include "train/run_dir.h"

namespace retort::report {
namespace {

// The page's chart styles (train/report_html.cpp's svg rules), for a file shown outside the page.
const char* kChartStyle =
    "<style>svg{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:12px;background:#fff}"
    ".title{font-weight:600;font-size:13.5px;fill:#222}.tick{font-size:11px;fill:#555}"
    ".label{font-size:12px;fill:#333}.legend{font-size:11.5px;fill:#333}.note{font-size:11px;fill:#888}"
    ".value{font-size:11px;fill:#222}.grid{stroke:#ebebeb}.frame{fill:none;stroke:#bbb}"
    ".errorbar{stroke:#222;stroke-width:1.5;fill:none}</style>";

std::string attribute(const std::string& tag, const std::string& name) {
  const std::string key = name + "=\"";
  const size_t a = tag.find(key);
  if (a == std::string::npos) return "";
  const size_t b = tag.find('"', a + key.size());
  return tag.substr(a + key.size(), b - a - key.size());
}

std::string file_name(std::string id) {
  for (char& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return id.empty() ? "chart" : id;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> standalone_charts(const std::string& html) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string open = "<svg class=\"chart\"";
  for (size_t at = html.find(open); at != std::string::npos; at = html.find(open, at + 1)) {
    const size_t tag_end = html.find('>', at);
    size_t depth = 1, pos = tag_end + 1;  // the matching </svg> (charts may nest <svg>)
    while (depth > 0) {
      const size_t next_open = html.find("<svg", pos), next_close = html.find("</svg>", pos);
      if (next_close == std::string::npos) return out;  // malformed: stop
      if (next_open != std::string::npos && next_open < next_close) {
        ++depth;
        pos = next_open + 4;
      } else {
        --depth;
        pos = next_close + 6;
      }
    }
    const std::string tag = html.substr(at, tag_end - at);
    const std::string body = html.substr(tag_end + 1, pos - tag_end - 1);
    out.emplace_back(attribute(tag, "data-chart"),
                     "<svg xmlns=\"http://www.w3.org/2000/svg\"" + tag.substr(4) + ">" + kChartStyle + body + "\n");
  }
  return out;
}

std::vector<std::filesystem::path> write_charts(const std::string& html, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::filesystem::path> written;
  for (const auto& [id, text] : standalone_charts(html)) {
    written.push_back(dir / (file_name(id) + ".svg"));
    write_file_atomic(written.back(), text);
  }
  return written;
}

}  // namespace retort::report
