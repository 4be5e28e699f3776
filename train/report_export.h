// Charts of a `retort report` page as standalone SVG files (`retort report --charts DIR`): each
// <svg class="chart" data-chart=ID> of the page, with the SVG namespace and the page's chart
// styles inlined, so a document (docs/methods/*.md) can show one chart of a real run as an image.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace retort::report {

// (chart id, standalone SVG text) for every chart of `html`, in page order.
std::vector<std::pair<std::string, std::string>> standalone_charts(const std::string& html);

// Writes each chart to <dir>/<id with unsafe characters as '_'>.svg (atomically); returns the
// files written.
std::vector<std::filesystem::path> write_charts(const std::string& html, const std::filesystem::path& dir);

}  // namespace retort::report
