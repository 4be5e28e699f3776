// Chart primitives of `retort report` as inline SVG text: a line chart of several series, a
// bar chart with error bars, a heatmap with a colour bar, and a grid of small image tiles.
// Every chart is an <svg class="chart" data-chart="ID"> and every line series a
// <polyline data-series="NAME" data-n="POINTS" data-last="LAST Y (%.6g)">, so tests (and
// readers of the HTML) can check the numbers a chart shows.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retort::report::svg {

// Text made safe for HTML/SVG element content and attribute values.
std::string escape(std::string_view text);
// A number as "%.6g" ("nan" for NaN).
std::string num(double v);
// The i-th colour of the series palette (CSS hex).
std::string color(size_t i);
enum class Palette { viridis, grey, diverging };
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};
// Colours for t in [0, 1]: viridis (sequential), grey, and blue-white-red (t = 0.5 is white).
Rgb palette_color(Palette palette, double t);
std::string hex(Rgb c);
// About `target` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of 10).
std::vector<double> nice_ticks(double lo, double hi, int target);
// A tick value as short text for a tick spacing of `step` ("0.25", "1.5k", "2e-05").
std::string tick_text(double v, double step);

struct Series {
  std::string name;          // data-series (machine-readable)
  std::string label;         // the legend's text (default: name)
  std::vector<double> x, y;  // points with a non-finite x or y are left out
  std::string color;         // default: palette by position
  bool dashed = false;
  bool markers = false;  // circles at the points (always drawn for series of under 30 points)
};

struct LineChart {
  std::string id, title, x_label, y_label;
  std::vector<Series> series;
  int width = 580, height = 300;
  bool integer_x = true;     // x ticks at whole numbers (steps, epochs, ranks)
  bool log_y = false;        // forced log scale (otherwise automatic: positive data spanning over 100x)
  bool allow_log_y = false;  // the automatic log scale may be used
};
// "" when no series has a finite point.
std::string line_chart(const LineChart& chart);

struct Bar {
  std::string label;                // '\n' separates lines
  double value = NAN, error = NAN;  // error: half the error bar (NaN: none)
  int64_t n = 0;
  std::string color;
};

struct BarChart {
  std::string id, title, y_label;
  std::vector<Bar> bars;
  int width = 580, height = 320;
  bool from_zero = false;  // otherwise the axis spans the bars' range (noted on the chart)
};
std::string bar_chart(const BarChart& chart);

struct Heatmap {
  std::string id, title, x_label, y_label;
  int64_t rows = 0, cols = 0;
  std::vector<double> values;                       // rows x cols, row-major: the colour
  std::vector<std::string> cell_text;               // optional text per cell (e.g. counts)
  std::vector<std::string> row_labels, col_labels;  // optional tick labels
  Palette palette = Palette::viridis;
  double lo = NAN, hi = NAN;  // colour range (default: the values' range; diverging: symmetric)
  std::string scale_label;    // the colour bar's caption
  int max_px = 320;           // the matrix's larger side in pixels
};
// Cells are <rect>s (with text) up to 1600 cells, larger matrices one raster image.
std::string heatmap(const Heatmap& map);

// A small raster image: rows x cols RGB pixels, row-major (drawn as an inline BMP, pixelated).
struct Tile {
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> rgb;
  bool empty() const { return rows == 0 || cols == 0; }
};

// A table of tiles under column titles, each row with a title at its left; one chart.
struct TileGrid {
  std::string id, title;
  std::vector<std::string> column_titles, row_titles;
  std::vector<std::vector<Tile>> tiles;  // [row][column]; an empty tile leaves its cell blank
  int tile_px = 72;
};
std::string tile_grid(const TileGrid& grid);

// A tile coloured by `palette` from values (rows x cols) scaled over their own range.
Tile tile_of(const std::vector<double>& values, int64_t rows, int64_t cols, Palette palette);

// A chart in a <figure> with a caption under it ("" when the chart is "": nothing to draw).
std::string figure(const std::string& chart, const std::string& caption);

}  // namespace retort::report::svg
