// Inline-SVG charts for `retort report` (see train/report_svg.h).
#include "train/report_svg.h"
#include <algorithm>
#include <array>
#include <cstdio>
#include <fmt/format.h>

namespace retort::report::svg {
namespace {

constexpr double kCharPx = 6.4;  // the average width of a 11-12 px sans-serif character

// Maps [lo, hi] to pixels [p0, p1], linearly or by log10.
struct Scale {
  double lo = 0, hi = 1, p0 = 0, p1 = 1;
  bool log = false;
  double operator()(double v) const {
    const double a = log ? std::log10(lo) : lo, b = log ? std::log10(hi) : hi, x = log ? std::log10(v) : v;
    return b == a ? (p0 + p1) / 2 : p0 + (x - a) / (b - a) * (p1 - p0);
  }
};

std::string attr_id(const std::string& id) {
  std::string out;
  for (char c : id) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

std::string open_svg(const std::string& id, int w, int h, const std::string& title) {
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{0}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{1}\" height=\"{2}\" "
      "viewBox=\"0 0 {1} {2}\" role=\"img\" aria-label=\"{3}\">\n<text class=\"title\" x=\"12\" y=\"20\">{3}</text>\n",
      escape(id), w, h, escape(title));
}

// The finite range of values; {NaN, NaN} when there are none.
std::pair<double, double> finite_range(const std::vector<double>& v) {
  double lo = NAN, hi = NAN;
  for (double x : v)
    if (std::isfinite(x)) {
      lo = std::isnan(lo) ? x : std::min(lo, x);
      hi = std::isnan(hi) ? x : std::max(hi, x);
    }
  return {lo, hi};
}

// A linear axis over [lo, hi] widened to whole ticks; returns the ticks.
std::vector<double> linear_axis(double& lo, double& hi) {
  if (hi - lo <= std::abs(hi) * 1e-12) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  auto ticks = nice_ticks(lo, hi, 5);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : hi - lo;
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  return nice_ticks(lo, hi, 5);
}

std::vector<double> log_axis(double& lo, double& hi) {
  lo = std::pow(10, std::floor(std::log10(lo)));
  hi = std::pow(10, std::ceil(std::log10(hi)));
  std::vector<double> ticks;
  const bool few = hi / lo <= 100;
  for (double d = lo; d <= hi * 1.0001; d *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if ((m == 1 || few) && d * m <= hi * 1.0001) ticks.push_back(d * m);
  return ticks;
}

std::string y_axis(const Scale& y, const std::vector<double>& ticks, double x0, double x1, const std::string& label,
                   double mid) {
  std::string out;
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  for (double t : ticks) {
    const double py = y(t);
    out +=
        fmt::format("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>", x0, x1, py, py);
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", x0 - 5, py + 4,
                       tick_text(t, y.log ? t : step));
  }
  out += fmt::format(
      "<text class=\"label\" transform=\"translate(14,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}"
      "</text>\n",
      mid, escape(label));
  return out;
}

std::string x_axis(const Scale& x, const std::vector<double>& ticks, double y0, double y1, const std::string& label,
                   double label_y) {
  std::string out;
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  for (double t : ticks) {
    const double px = x(t);
    out +=
        fmt::format("<line class=\"grid\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\"/>", px, y0, y1);
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px, y1 + 15,
                       tick_text(t, step));
  }
  out += fmt::format("<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     (x.p0 + x.p1) / 2, label_y, escape(label));
  return out;
}

// The legend above the plot: returns its SVG and sets `bottom` to the y below it.
std::string legend(const std::vector<Series>& series, double x0, double x_max, double& bottom) {
  std::string out;
  double x = x0, y = 36;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const std::string& label = s.label.empty() ? s.name : s.label;
    const double w = 26 + label.size() * kCharPx + 14;
    if (x + w > x_max && x > x0) x = x0, y += 16;
    out += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2.5\"{}/>"
        "<text class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        x, x + 20, y - 4, y - 4, s.color, s.dashed ? " stroke-dasharray=\"5 3\"" : "", x + 25, y, escape(label));
    x += w;
  }
  bottom = y + 10;
  return out;
}

std::string polyline(const Series& s, const Scale& x, const Scale& y) {
  std::string points, marks;
  double last = NAN;
  size_t n = 0;
  const std::string& label = s.label.empty() ? s.name : s.label;
  const bool markers = s.markers || s.x.size() < 30;
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
    if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (y.log && s.y[i] <= 0)) continue;
    const double px = x(s.x[i]), py = y(s.y[i]);
    points += fmt::format("{}{:.1f},{:.1f}", n ? " " : "", px, py);
    if (markers)
      marks +=
          fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: {} at {}</title></circle>",
                      px, py, s.color, escape(label), num(s.y[i]), num(s.x[i]));
    last = s.y[i], ++n;
  }
  return fmt::format(
      "<polyline data-series=\"{}\" data-n=\"{}\" data-last=\"{}\" points=\"{}\" fill=\"none\" "
      "stroke=\"{}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"{}><title>{}</title></polyline>\n{}\n",
      escape(s.name), n, num(last), points, s.color, s.dashed ? " stroke-dasharray=\"5 3\"" : "", escape(label), marks);
}

void append_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += char((v >> (8 * i)) & 0xff);
}

std::string base64(const std::string& bytes) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 2]));
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? abc[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? abc[v & 63] : '=';
  }
  return out;
}

// The tile as an uncompressed 24-bit BMP in a data: URI.
std::string bmp_uri(const Tile& t) {
  const uint32_t row_bytes = uint32_t((t.cols * 3 + 3) / 4 * 4), size = 54 + row_bytes * uint32_t(t.rows);
  std::string b = "BM";
  append_u32(b, size);
  append_u32(b, 0);
  append_u32(b, 54);
  append_u32(b, 40);
  append_u32(b, uint32_t(t.cols));
  append_u32(b, uint32_t(t.rows));
  b += std::string("\x01\x00\x18\x00", 4);  // 1 plane, 24 bits per pixel
  for (uint32_t v : {0u, row_bytes * uint32_t(t.rows), 2835u, 2835u, 0u, 0u}) append_u32(b, v);
  for (int64_t r = t.rows - 1; r >= 0; --r) {  // bottom-up rows of BGR
    for (int64_t c = 0; c < t.cols; ++c)
      for (int k = 2; k >= 0; --k) b += char(t.rgb[size_t((r * t.cols + c) * 3 + k)]);
    b.append(row_bytes - size_t(t.cols) * 3, '\0');
  }
  return "data:image/bmp;base64," + base64(b);
}

std::string image(const Tile& t, double x, double y, double w, double h) {
  return fmt::format(
      "<image x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" preserveAspectRatio=\"none\" "
      "style=\"image-rendering:pixelated\" href=\"{}\"/>\n",
      x, y, w, h, bmp_uri(t));
}

Rgb lerp(const std::array<Rgb, 9>& stops, double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8;
  const size_t i = std::min<size_t>(size_t(t), 7);
  const double f = t - double(i);
  auto mix = [&](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
  return {mix(stops[i].r, stops[i + 1].r), mix(stops[i].g, stops[i + 1].g), mix(stops[i].b, stops[i + 1].b)};
}

bool dark(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140; }

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string color(size_t i) {
  static const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                  "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
  return palette[i % 10];
}

Rgb palette_color(Palette palette, double t) {
  static const std::array<Rgb, 9> viridis_stops = {{{68, 1, 84},
                                                    {71, 44, 122},
                                                    {59, 81, 139},
                                                    {44, 113, 142},
                                                    {33, 144, 141},
                                                    {39, 173, 129},
                                                    {92, 200, 99},
                                                    {170, 220, 50},
                                                    {253, 231, 37}}};
  static const std::array<Rgb, 9> diverging_stops = {{{33, 102, 172},
                                                      {67, 147, 195},
                                                      {146, 197, 222},
                                                      {209, 229, 240},
                                                      {247, 247, 247},
                                                      {253, 219, 199},
                                                      {244, 165, 130},
                                                      {214, 96, 77},
                                                      {178, 24, 43}}};
  if (palette == Palette::grey) {
    const auto g = uint8_t(std::lround(std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 255));
    return {g, g, g};
  }
  return lerp(palette == Palette::viridis ? viridis_stops : diverging_stops, t);
}

std::string hex(Rgb c) { return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b); }

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1), mag = std::pow(10, std::floor(std::log10(raw)));
  const double r = raw / mag, step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  std::vector<double> ticks;
  const double first = std::ceil(lo / step - 1e-9);
  for (double i = first; i * step <= hi + step * 1e-9; ++i) ticks.push_back(i == 0 ? 0.0 : i * step);
  return ticks;
}

std::string tick_text(double v, double step) {
  step = std::abs(step);
  if (v == 0) return "0";
  if (std::abs(v) >= 1e6) return tick_text(v / 1e6, step / 1e6) + "M";
  if (std::abs(v) >= 1e4) return tick_text(v / 1e3, step / 1e3) + "k";
  if (std::abs(v) < 1e-3) return fmt::format("{:.2g}", v);
  const int decimals = std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 6);
  return fmt::format("{:.{}f}", v, decimals);
}

std::string line_chart(const LineChart& c) {
  std::vector<Series> series;
  std::vector<double> xs, ys;
  for (const Series& s : c.series) {
    if (std::isnan(finite_range(s.y).first)) continue;  // no finite point
    series.push_back(s);
    if (series.back().color.empty()) series.back().color = color(series.size() - 1);
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  if (series.empty()) return "";
  auto [xlo, xhi] = finite_range(xs);
  auto [ylo, yhi] = finite_range(ys);
  const bool log_y = c.log_y || (c.allow_log_y && ylo > 0 && yhi / ylo > 100);
  const double ml = 62, mr = 16, mb = 44;
  double top = 0;
  std::string out = open_svg(c.id, c.width, c.height, c.title);
  out += legend(series, ml, c.width - mr, top);
  if (xhi == xlo) xlo -= 1, xhi += 1;
  Scale x{xlo, xhi, ml, c.width - mr};
  auto x_ticks = nice_ticks(xlo, xhi, 6);
  if (c.integer_x && x_ticks.size() > 1 && x_ticks[1] - x_ticks[0] < 1) {
    x_ticks.clear();
    for (double t = std::ceil(xlo); t <= xhi; ++t) x_ticks.push_back(t);
  }
  if (!log_y) {
    const double pad = (yhi - ylo) * 0.04;
    ylo = ylo >= 0 && ylo - pad < 0 ? 0 : ylo - pad;  // no negative axis for positive data
    yhi += pad;
  }
  const auto y_ticks = log_y ? log_axis(ylo, yhi) : linear_axis(ylo, yhi);
  Scale y{ylo, yhi, c.height - mb, top, log_y};
  out += y_axis(y, y_ticks, ml, c.width - mr, c.y_label + (log_y ? " (log scale)" : ""), (top + c.height - mb) / 2);
  out += x_axis(x, x_ticks, top, c.height - mb, c.x_label, c.height - 8);
  out += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\"/>\n", ml, top,
                     c.width - mr - ml, c.height - mb - top);
  for (const Series& s : series) out += polyline(s, x, y);
  return out + "</svg>\n";
}

std::string bar_chart(const BarChart& c) {
  if (c.bars.empty()) return "";
  std::vector<double> ends;
  for (const Bar& b : c.bars) {
    const double e = std::isfinite(b.error) ? b.error : 0;
    ends.push_back(b.value - e), ends.push_back(b.value + e);
  }
  auto [lo, hi] = finite_range(ends);
  if (std::isnan(lo)) return "";
  const double span = std::max(hi - lo, std::abs(hi) * 0.01 + 1e-9);
  lo = c.from_zero ? std::min(0.0, lo) : lo - span * 0.6;
  hi += span * 0.35;
  const auto ticks = linear_axis(lo, hi);
  const double ml = 62, mr = 16, mb = 58, top = 40, bottom = c.height - mb;
  Scale y{lo, hi, bottom, top};
  std::string out = open_svg(c.id, c.width, c.height, c.title);
  out += y_axis(y, ticks, ml, c.width - mr, c.y_label, (top + bottom) / 2);
  if (!c.from_zero && lo != 0)
    out += fmt::format("<text class=\"note\" x=\"{}\" y=\"34\" text-anchor=\"end\">the axis starts at {}</text>\n",
                       c.width - mr, tick_text(lo, ticks.size() > 1 ? ticks[1] - ticks[0] : 1));
  const double slot = (c.width - mr - ml) / double(c.bars.size()), w = std::min(slot * 0.6, 90.0);
  for (size_t i = 0; i < c.bars.size(); ++i) {
    const Bar& b = c.bars[i];
    const double cx = ml + slot * (i + 0.5), py = y(b.value);
    const std::string fill = b.color.empty() ? color(i) : b.color;
    out += fmt::format(
        "<rect data-bar=\"{}\" data-value=\"{}\" data-error=\"{}\" data-n=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" "
        "width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" fill-opacity=\"0.8\"><title>{}</title></rect>\n",
        escape(b.label), num(b.value), num(b.error), b.n, cx - w / 2, py, w, std::max(0.0, bottom - py), fill,
        escape(b.label));
    double text_y = py - 6;
    if (std::isfinite(b.error) && b.error > 0) {
      const double y0 = y(b.value - b.error), y1 = y(b.value + b.error);
      out += fmt::format(
          "<path class=\"errorbar\" d=\"M{0:.1f},{1:.1f}V{2:.1f}M{3:.1f},{1:.1f}H{4:.1f}M{3:.1f},{2:.1f}"
          "H{4:.1f}\"/>\n",
          cx, y0, y1, cx - 7, cx + 7);
      text_y = y1 - 6;
    }
    const std::string value =
        std::isfinite(b.error) ? fmt::format("{:.2f} ± {:.2f}", b.value, b.error) : fmt::format("{:.2f}", b.value);
    out += fmt::format("<text class=\"value\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", cx, text_y,
                       value);
    std::string label = b.label + (b.n > 0 ? fmt::format("\nn = {}", b.n) : "");
    double ly = bottom + 15;
    for (size_t p = 0, q; p <= label.size(); p = q + 1, ly += 13) {
      q = std::min(label.find('\n', p), label.size());
      out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", cx, ly,
                         escape(label.substr(p, q - p)));
    }
  }
  return out + "</svg>\n";
}

std::string heatmap(const Heatmap& m) {
  if (m.rows <= 0 || m.cols <= 0 || int64_t(m.values.size()) != m.rows * m.cols) return "";
  auto [lo, hi] = finite_range(m.values);
  if (std::isfinite(m.lo)) lo = m.lo;
  if (std::isfinite(m.hi)) hi = m.hi;
  if (m.palette == Palette::diverging) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
  if (!(hi > lo)) hi = lo + 1;
  const double cell = std::clamp(double(m.max_px) / double(std::max(m.rows, m.cols)), 1.0, 44.0);
  const double ml = 58, top = 34, w = cell * double(m.cols), h = cell * double(m.rows);
  const int width = int(ml + w + 90), height = int(top + h + 46);
  std::string out = open_svg(m.id, width, height, m.title);
  auto t_of = [&](double v) { return (v - lo) / (hi - lo); };
  if (m.rows * m.cols <= 1600) {
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c) {
        const size_t i = size_t(r * m.cols + c);
        const Rgb fill = palette_color(m.palette, t_of(m.values[i]));
        const std::string text = i < m.cell_text.size() ? m.cell_text[i] : "";
        out += fmt::format(
            "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>"
            "row {}, column {}: {}</title></rect>",
            ml + c * cell, top + r * cell, cell + 0.3, cell + 0.3, hex(fill), r, c,
            text.empty() ? num(m.values[i]) : escape(text));
        if (!text.empty())
          out += fmt::format(
              "<text class=\"cell\" x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\" font-size=\"{:.0f}\" "
              "text-anchor=\"middle\">{}</text>",
              ml + (c + 0.5) * cell, top + (r + 0.5) * cell + 3.5, dark(fill) ? "#fff" : "#222",
              std::min(11.0, cell * 0.38), escape(text));
      }
  } else {
    Tile t{m.rows, m.cols, {}};
    for (double v : m.values) {
      const Rgb c = palette_color(m.palette, t_of(v));
      t.rgb.insert(t.rgb.end(), {c.r, c.g, c.b});
    }
    out += image(t, ml, top, w, h);
  }
  const int64_t every = int64_t(std::ceil(12.0 / cell));
  for (int64_t r = 0; r < m.rows && !m.row_labels.empty(); r += every)
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", ml - 4,
                       top + (r + 0.5) * cell + 4, escape(m.row_labels[size_t(r) % m.row_labels.size()]));
  for (int64_t c = 0; c < m.cols && !m.col_labels.empty(); c += every)
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>",
                       ml + (c + 0.5) * cell, top + h + 13, escape(m.col_labels[size_t(c) % m.col_labels.size()]));
  out += fmt::format("\n<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", ml + w / 2,
                     top + h + 32, escape(m.x_label));
  out += fmt::format(
      "<text class=\"label\" transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}"
      "</text>\n",
      top + h / 2, escape(m.y_label));
  // the colour bar: a gradient from hi (top) to lo (bottom)
  const std::string gid = "g_" + attr_id(m.id);
  out += "<defs><linearGradient id=\"" + gid + "\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int k = 0; k <= 8; ++k)
    out += fmt::format("<stop offset=\"{:.3f}\" stop-color=\"{}\"/>", k / 8.0, hex(palette_color(m.palette, k / 8.0)));
  const double bx = ml + w + 14, bh = std::max(h, 60.0);
  out += fmt::format(
      "</linearGradient></defs><rect x=\"{:.1f}\" y=\"{}\" width=\"12\" height=\"{:.1f}\" fill=\"url(#{})\""
      " stroke=\"#999\" stroke-width=\"0.5\"/>",
      bx, top, bh, gid);
  const auto ticks = nice_ticks(lo, hi, 4);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : hi - lo;
  for (double t : ticks)
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>", bx + 16,
                       top + bh * (1 - t_of(t)) + 4, tick_text(t, step));
  out += fmt::format(
      "<text class=\"note\" transform=\"translate({:.1f},{:.1f}) rotate(90)\" text-anchor=\"middle\">"
      "{}</text>\n",
      bx + 52, top + bh / 2, escape(m.scale_label));
  return out + "</svg>\n";
}

Tile tile_of(const std::vector<double>& values, int64_t rows, int64_t cols, Palette palette) {
  Tile t{rows, cols, {}};
  auto [lo, hi] = finite_range(values);
  if (!(hi > lo)) hi = lo + 1;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double v = size_t(i) < values.size() ? values[size_t(i)] : NAN;
    const Rgb c = palette_color(palette, (v - lo) / (hi - lo));
    t.rgb.insert(t.rgb.end(), {c.r, c.g, c.b});
  }
  return t;
}

std::string tile_grid(const TileGrid& g) {
  size_t longest = 0;
  for (const auto& title : g.column_titles) longest = std::max(longest, title.size());
  size_t widest_row = 0;
  for (const auto& title : g.row_titles) widest_row = std::max(widest_row, title.size());
  const double col_w = std::max(double(g.tile_px), longest * 5.8) + 10, ml = 20 + widest_row * 6.0, top = 48;
  const double row_h = g.tile_px + 8;
  const int width = int(ml + col_w * double(g.column_titles.size()) + 8);
  const int height = int(top + row_h * double(g.tiles.size()) + 6);
  std::string out = open_svg(g.id, width, height, g.title);
  for (size_t c = 0; c < g.column_titles.size(); ++c)
    out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                       ml + col_w * (c + 0.5), top - 8, escape(g.column_titles[c]));
  for (size_t r = 0; r < g.tiles.size(); ++r) {
    const double y = top + row_h * double(r);
    if (r < g.row_titles.size())
      out += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", ml - 8,
                         y + g.tile_px / 2.0 + 4, escape(g.row_titles[r]));
    for (size_t c = 0; c < g.tiles[r].size(); ++c) {
      const Tile& t = g.tiles[r][c];
      if (t.empty()) continue;
      const double s = g.tile_px / double(std::max(t.rows, t.cols));
      out += image(t, ml + col_w * (c + 0.5) - s * t.cols / 2, y, s * t.cols, s * t.rows);
    }
  }
  return out + "</svg>\n";
}

std::string figure(const std::string& chart, const std::string& caption) {
  if (chart.empty()) return "";
  return "<figure>" + chart + (caption.empty() ? "" : "<figcaption>" + caption + "</figcaption>") + "</figure>\n";
}

}  // namespace retort::report::svg
