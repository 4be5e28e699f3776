// The pictures of a stage in `retort report` (see train/report_pictures.h).
#include "train/report_pictures.h"
#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include "engine/data/cifar.h"
#include "engine/data/idx.h"
#include "train/report_svg.h"

namespace retort::report {
namespace {

using svg::figure;
using svg::LineChart;
using svg::Series;

// The class names of the built-in datasets with at most 20 classes (else none).
std::vector<std::string> class_names(const std::string& dataset) {
  if (dataset == "fashion-mnist") return data::fashion_mnist_class_names();
  if (dataset == "cifar10") return data::cifar10_class_names();
  return {};
}

std::string class_list(const std::string& dataset) {
  std::string out;
  const auto names = class_names(dataset);
  for (size_t i = 0; i < names.size(); ++i) out += fmt::format("{}{} {}", i ? " · " : "", i, names[i]);
  return out;
}

std::string label_text(double label, const std::string& dataset) {
  const auto names = class_names(dataset);
  const auto i = size_t(label);
  return label >= 0 && i < names.size() ? fmt::format("{} {}", i, names[i]) : fmt::format("label {:.0f}", label);
}

std::vector<std::string> indices(int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

std::string confusion_chart(const Array& a, const std::string& id, const std::string& dataset) {
  const int64_t c = a.dim(0);
  if (a.shape.size() != 2 || a.dim(1) != c || c == 0) return "";
  svg::Heatmap m;
  m.id = id + ".confusion", m.rows = m.cols = c, m.x_label = "predicted class", m.y_label = "true class";
  m.row_labels = m.col_labels = indices(c), m.lo = 0, m.hi = 1, m.scale_label = "share of the row";
  double total = 0, right = 0;
  for (int64_t r = 0; r < c; ++r) {
    double row = 0;
    for (int64_t k = 0; k < c; ++k) row += a.values[size_t(r * c + k)];
    for (int64_t k = 0; k < c; ++k) {
      const double v = a.values[size_t(r * c + k)];
      m.values.push_back(row > 0 ? v / row : 0);
      if (c <= 20) m.cell_text.push_back(fmt::format("{:.0f}", v));
    }
    total += row, right += a.values[size_t(r * c + r)];
  }
  m.title =
      fmt::format("Final test: confusion matrix ({:.0f} images, {:.2f} % right)", total, total > 0 ? 100 * right / total : 0.0);
  m.max_px = c <= 20 ? 320 : 440;
  const std::string names = class_list(dataset);
  return figure(svg::heatmap(m),
                "Rows: the true class, columns: the prediction; colour: the share of the row "
                "(the diagonal is per-class recall)." +
                    (names.empty() ? "" : " Classes: " + names));
}

// "fsp.teacher.pair0" -> {"fsp", "teacher", "pair0"}; "aft.rho" -> {"aft", "", "rho"}.
struct TensorName {
  std::string term, role, rest;
};
TensorName split_name(const std::string& name) {
  const size_t a = name.find('.');
  if (a == std::string::npos) return {name, "", ""};
  TensorName t{name.substr(0, a), "", name.substr(a + 1)};
  for (const char* role : {"teacher.", "student."})
    if (t.rest.starts_with(role))
      t.role = std::string(role, std::strlen(role) - 1), t.rest = t.rest.substr(t.role.size() + 1);
  return t;
}

// Teacher and student matrices side by side on one colour scale, and their difference.
std::string matrix_pair(const Array& t, const Array& s, const std::string& id, const TensorName& n) {
  if (t.shape != s.shape || t.shape.size() != 2) return "";
  double lo = 0, hi = 0;
  for (const auto* a : {&t, &s})
    for (double v : a->values) lo = std::min(lo, v), hi = std::max(hi, v);
  std::string out;
  std::vector<double> diff;
  for (size_t i = 0; i < t.values.size(); ++i) diff.push_back(s.values[i] - t.values[i]);
  for (auto [role, a] : {std::pair{"teacher", &t.values}, {"student", &s.values}, {"student − teacher", &diff}}) {
    svg::Heatmap m;
    const bool is_diff = a == &diff;
    m.id = id + "." + n.term + "." + n.rest + (is_diff ? ".diff" : std::string(".") + role);
    m.title = fmt::format("{} {}: {}", n.term, n.rest, role);
    m.rows = t.dim(0), m.cols = t.dim(1), m.values = *a, m.max_px = 240;
    m.x_label = "channel (later layer)", m.y_label = "channel (earlier)";
    m.row_labels = indices(m.rows), m.col_labels = indices(m.cols);
    m.palette = is_diff || lo < 0 ? svg::Palette::diverging : svg::Palette::viridis;
    if (!is_diff) m.lo = lo, m.hi = hi;
    out += figure(svg::heatmap(m), "");
  }
  return out;
}

svg::Tile image_tile(const Array& images, int64_t i) {
  const int64_t ch = images.dim(1), h = images.dim(2), w = images.dim(3), plane = h * w;
  const size_t base = size_t(i * ch * plane);
  std::vector<double> px(images.values.begin() + long(base), images.values.begin() + long(base + size_t(ch * plane)));
  if (ch != 3) return svg::tile_of({px.begin(), px.begin() + plane}, h, w, svg::Palette::grey);
  auto [lo, hi] = std::minmax_element(px.begin(), px.end());
  const double range = *hi > *lo ? *hi - *lo : 1;
  svg::Tile t{h, w, {}};
  for (int64_t p = 0; p < plane; ++p)
    for (int k = 0; k < 3; ++k) t.rgb.push_back(uint8_t(std::lround(255 * (px[size_t(k * plane + p)] - *lo) / range)));
  return t;
}

// The input images next to each pair's teacher and student attention maps.
std::string attention_grid(const Pictures& p, const std::string& id, const std::string& term,
                           const std::vector<std::string>& pairs, const std::string& dataset) {
  const Array* images = p.find("images");
  const Array* labels = p.find("labels");
  svg::TileGrid g;
  g.id = id + "." + term + ".maps", g.title = term + ": attention maps of teacher and student";
  const bool with_images = images && images->shape.size() == 4;
  if (with_images) g.column_titles.push_back("input");
  for (const auto& pair : pairs)
    g.column_titles.push_back("teacher " + pair), g.column_titles.push_back("student " + pair);
  int64_t n = p.find(term + ".teacher." + pairs[0])->dim(0);
  if (with_images) n = std::min(n, images->dim(0));
  for (int64_t i = 0; i < std::min<int64_t>(n, 8); ++i) {
    std::vector<svg::Tile> row;
    if (with_images) row.push_back(image_tile(*images, i));
    for (const auto& pair : pairs)
      for (const char* role : {".teacher.", ".student."}) {
        const Array& a = *p.find(term + role + pair);
        const int64_t h = a.dim(1), w = a.dim(2);
        std::vector<double> v(a.values.begin() + long(i * h * w), a.values.begin() + long((i + 1) * h * w));
        row.push_back(svg::tile_of(v, h, w, svg::Palette::viridis));
      }
    g.tiles.push_back(std::move(row));
    const bool labelled = labels && labels->dim(0) > i;
    g.row_titles.push_back(labelled ? label_text(labels->values[size_t(i)], dataset) : fmt::format("#{}", i));
  }
  return figure(svg::tile_grid(g),
                "Where each network looks: spatial attention (bright: strong activation), each "
                "map scaled to its own range.");
}

// A 1-D tensor (AFT's rho) sorted from the largest value down.
std::string sorted_vector(const Array& a, const std::string& id, const std::string& name) {
  LineChart c;
  c.id = id + "." + name + ".sorted", c.title = name + " sorted (" + std::to_string(a.values.size()) + " values)";
  c.x_label = "rank", c.y_label = "value";
  Series s{"sorted", name + ", largest first", {}, a.values, "", false, false};
  std::sort(s.y.begin(), s.y.end(), std::greater<>());
  for (size_t i = 0; i < s.y.size(); ++i) s.x.push_back(double(i + 1));
  c.series.push_back(s);
  return figure(svg::line_chart(c), "How the learned weights spread: a flat line weighs every feature alike.");
}

}  // namespace

std::string report_pictures(const Pictures& p, const std::string& id, const std::string& dataset) {
  std::string out;
  if (const Array* c = p.find("confusion")) out += confusion_chart(*c, id, dataset);
  std::map<std::string, std::vector<std::string>> attention;  // term -> pairs with 3-D maps
  for (const auto& [name, a] : p.tensors) {
    const TensorName n = split_name(name);
    if (name == "confusion" || name == "images" || name == "labels" || n.rest.empty()) continue;
    if (n.role == "teacher") {
      const Array* s = p.find(n.term + ".student." + n.rest);
      if (!s || s->shape != a.shape) continue;
      if (a.shape.size() == 3)
        attention[n.term].push_back(n.rest);
      else
        out += matrix_pair(a, *s, id, n);
    } else if (n.role.empty() && a.shape.size() == 1) {
      out += sorted_vector(a, id, name);
    }
  }
  for (const auto& [term, pairs] : attention) out += attention_grid(p, id, term, pairs, dataset);
  return out;
}

}  // namespace retort::report
