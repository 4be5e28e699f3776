// `retort report`: reading run directories (new and old formats, corrupt files), the SVG chart
// primitives, and the page's machine-checkable numbers, on small run directories made here.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <regex>
#include "engine/io/safetensors.h"
#include "recipe_test_util.h"
#include "train/report_data.h"
#include "train/report_export.h"
#include "train/report_html.h"
#include "train/report_svg.h"

using namespace retort;
using namespace retort::report;
using retort::test::error_of;
using retort::test::TempDir;

namespace {

const char* kResolved = R"(# Resolved recipe
[run]
name = "tiny_kd"
seed = 0
[data]
dataset = "fashion-mnist"
[models.teacher]
arch = "wrn_16_2"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
teachers = []
epochs = 1
batch_size = 64
optimizer = { type = "sgd", lr = 0.1 }
schedule = { type = "cosine" }
losses = [
  { name = "ce", weight = 1.0, label_smoothing = 0.0 },
]
[[stages]]
name = "kd"
train = "student"
teachers = ["teacher"]
epochs = 2
batch_size = 64
losses = [
  { name = "ce", weight = 0.1 },
  { name = "kd", weight = 0.9, T = 4.0, teacher = "teacher" },
]
)";

std::string summary_json(double teacher_top1, double kd_top1) {
  return fmt::format(R"({{"recipe": "tiny_kd", "status": "finished", "started_utc": "2026-12-05T10:00:00Z",
  "machine": {{"line": "cpu: test machine, 2 threads"}},
  "results": [{{"stage": "teacher", "model": "teacher", "test_top1": {}, "test_top5": 99.5, "wall_s": 12.5,
                "parameters": 691386}},
              {{"stage": "kd", "model": "student", "test_top1": {}, "test_top5": 98.25, "wall_s": 3.5,
                "parameters": 77754}}]}})",
                     teacher_top1, kd_top1);
}

std::string metrics_jsonl() {
  std::string out;
  for (int e = 1; e <= 2; ++e)
    out += fmt::format(R"({{"stage":"kd","model":"student","epoch":{},"step":{},"split":"test","loss":0.5,"top1":{},)"
                       R"("top5":99,"train_loss":1.5,"train_top1":80,"images_per_s":900,"wall_s":{},)"
                       R"("loss_stats":{{"kd.top1_agreement":0.8}}}})"
                       "\n",
                       e, 20 * e, 80 + e, 2 * e);
  return out + R"({"stage":"teacher","model":"teacher","epoch":1,"step":10,"split":"test","loss":0.3,"top1":90,)"
               R"("top5":99.5,"train_loss":null,"train_top1":null,"images_per_s":null,"wall_s":12.5})"
               "\n";
}

// 4 rows of the kd stage (steps 10..40) and 2 of the teacher (the teacher's rows in the old format).
std::string steps_jsonl() {
  std::string out = R"({"stage":"teacher","epoch":1,"step":5,"loss":2.0,"lr":0.1,"images":320})"
                    "\n"
                    R"({"stage":"teacher","epoch":1,"step":10,"loss":1.5,"lr":0.05,"images":320})"
                    "\n";
  for (int s = 1; s <= 4; ++s)
    out += fmt::format(R"({{"stage":"kd","epoch":{},"step":{},"loss":{},"lr":{},"images":640,"images_per_s":{},)"
                       R"("train_top1":{},"grad_norm":{},"terms":{{"ce":{},"kd":{}}},"weights":{{"ce":0.1,"kd":0.9}},)"
                       R"("stats":{{"kd.top1_agreement":{},"kd.soft_agreement":0.9,"aft.rho_mean":null}}}})"
                       "\n",
                       s <= 2 ? 1 : 2, 10 * s, 0.1 * (2.0 / s) + 0.9 * (3.0 / s), 0.1 / s, 1000 + s, 50 + 10 * s,
                       4.0 / s, 2.0 / s, 3.0 / s, 0.5 + 0.1 * s);
  return out;
}

void write_pictures(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir / "pictures");
  std::vector<double> confusion(9, 1.0), images(2 * 1 * 4 * 4), maps(2 * 2 * 2), fsp(6), rho = {0.2, 0.7, 0.1};
  confusion[0] = confusion[4] = confusion[8] = 30;
  for (size_t i = 0; i < images.size(); ++i) images[i] = double(i % 7) - 3;
  for (size_t i = 0; i < maps.size(); ++i) maps[i] = double(i);
  for (size_t i = 0; i < fsp.size(); ++i) fsp[i] = double(i) - 2;
  write_safetensors((dir / "pictures" / "kd.safetensors").string(),
                    {{"confusion", Tensor::from_vector(confusion, {3, 3})},
                     {"images", Tensor::from_vector(images, {2, 1, 4, 4})},
                     {"labels", Tensor::from_i64({2, 0}, {2})},
                     {"at.teacher.pair0", Tensor::from_vector(maps, {2, 2, 2})},
                     {"at.student.pair0", Tensor::from_vector(maps, {2, 2, 2})},
                     {"fsp.teacher.pair0", Tensor::from_vector(fsp, {2, 3})},
                     {"fsp.student.pair0", Tensor::from_vector(fsp, {2, 3})},
                     {"aft.rho", Tensor::from_vector(rho, {3})}},
                    {{"stage", "kd"}, {"model", "student"}});
}

// A run directory; `full`: with steps.jsonl and pictures (the new format).
std::filesystem::path make_run(const TempDir& tmp, const std::string& name, double teacher_top1, double kd_top1,
                               bool full = true) {
  const auto dir = tmp.path / name;
  std::filesystem::create_directories(dir);
  tmp.write(name + "/resolved.toml", kResolved);
  tmp.write(name + "/summary.json", summary_json(teacher_top1, kd_top1));
  tmp.write(name + "/metrics.jsonl", metrics_jsonl());
  if (full) {
    tmp.write(name + "/steps.jsonl", steps_jsonl());
    write_pictures(dir);
  }
  return dir;
}

// The value of attribute `attr` of the first element matching `element_regex`; "" when absent.
std::string attribute(const std::string& html, const std::string& element_regex, const std::string& attr) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex(element_regex + "[^>]*"))) return "";
  std::smatch a;
  const std::string tag = m.str();
  if (!std::regex_search(tag, a, std::regex(" " + attr + "=\"([^\"]*)\""))) return "";
  return a[1];
}

// The <svg> element of chart `id` (its whole text).
std::string chart_of(const std::string& html, const std::string& id) {
  const size_t begin = html.find("data-chart=\"" + id + "\"");
  if (begin == std::string::npos) return "";
  return html.substr(begin, html.find("</svg>", begin) - begin);
}

}  // namespace

TEST_CASE("report: reads a run directory of the new format") {
  TempDir tmp;
  const RunData run = read_run_dir(make_run(tmp, "run", 91.5, 88.25));
  CHECK(run.recipe == "tiny_kd");
  CHECK(run.status == "finished");
  CHECK(run.machine == "cpu: test machine, 2 threads");
  CHECK(run.dataset == "fashion-mnist");
  REQUIRE(run.results.size() == 2);
  CHECK(run.results[1].test_top1 == 88.25);
  CHECK(run.results[0].parameters == 691386);
  REQUIRE(run.stages.size() == 2);
  CHECK(run.stages[1].arch == "resnet8");
  CHECK(run.stages[1].teachers == std::vector<std::string>{"teacher"});
  REQUIRE(run.stages[1].losses.size() == 2);
  CHECK(run.stages[1].losses[1].name == "kd");
  CHECK(run.stages[1].losses[1].weight == 0.9);
  CHECK(run.stages[1].losses[1].settings == std::vector<std::string>{"T=4", "teacher=teacher"});
  CHECK(run.stages[0].optimizer == "sgd lr 0.1, cosine");
  const auto steps = run.steps_of("kd");
  REQUIRE(steps.size() == 4);
  CHECK(steps[3]->terms.at("kd") == 0.75);
  CHECK(steps[3]->grad_norm == 1.0);
  CHECK(steps[0]->weights.at("ce") == 0.1);
  CHECK(std::isnan(steps[0]->stats.at("aft.rho_mean")));
  CHECK(std::isnan(run.steps_of("teacher")[0]->grad_norm));  // an old row
  CHECK(run.evals_of("kd").size() == 2);
  CHECK(run.evals_of("kd")[1]->loss_stats.at("kd.top1_agreement") == 0.8);
  CHECK(std::isnan(run.evals_of("teacher")[0]->train_loss));
  const Pictures* p = run.pictures_of("kd");
  REQUIRE(p);
  CHECK(p->model == "student");
  CHECK(p->find("confusion")->shape == std::vector<int64_t>{3, 3});
  CHECK(p->find("labels")->values == std::vector<double>{2, 0});
  CHECK(run.stage_names() == std::vector<std::string>{"teacher", "kd"});
}

TEST_CASE("report: reads an old run directory and tolerates missing files") {
  TempDir tmp;
  const auto dir = make_run(tmp, "old", 90, 87, false);
  std::filesystem::remove(dir / "resolved.toml");
  const RunData run = read_run_dir(dir);
  CHECK(run.steps.empty());
  CHECK(run.pictures.empty());
  CHECK(run.stages.empty());
  CHECK(run.stage_names() == std::vector<std::string>{"teacher", "kd"});
  CHECK(run.notes == std::vector<std::string>{"no resolved.toml"});
  const std::string html = report_html({run});
  CHECK(html.find("data-chart=\"r0.kd.loss\"") != std::string::npos);  // the per-epoch fallback
  CHECK(attribute(chart_of(html, "r0.kd.loss"), "<polyline data-series=\"train_loss\"", "data-n") == "2");
  CHECK(chart_of(html, "r0.kd.grad_norm").empty());  // nothing measured, no chart
}

TEST_CASE("report: corrupt files are errors naming the file and line") {
  TempDir tmp;
  const auto dir = make_run(tmp, "bad", 90, 87);
  std::string steps = steps_jsonl();
  tmp.write("bad/steps.jsonl", steps.substr(0, steps.find('\n') + 1) + "{\"stage\": \"kd\", \"step\": oops}\n" +
                                   steps.substr(steps.find('\n') + 1));
  std::string e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("steps.jsonl:2: not valid JSON") != std::string::npos);

  tmp.write("bad/steps.jsonl", "{\"stage\": \"kd\", \"step\": \"ten\"}\n");
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("steps.jsonl:1: \"step\" should be a number") != std::string::npos);

  tmp.write("bad/steps.jsonl", steps_jsonl() + "{\"stage\": \"kd\", \"st");  // a row being written
  RunData run = read_run_dir(dir);
  CHECK(run.steps.size() == 6);
  REQUIRE(run.notes.size() == 1);
  CHECK(run.notes[0].find("steps.jsonl:7: skipped an unfinished last line") != std::string::npos);

  tmp.write("bad/metrics.jsonl", "[1, 2]\n");
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("metrics.jsonl:1: expected a JSON object") != std::string::npos);

  tmp.write("bad/resolved.toml", "[run]\nname = \"x\"\nseed = = 3\n");
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("resolved.toml:3: TOML syntax error") != std::string::npos);

  tmp.write("bad/summary.json", "{\n\"recipe\": \"x\",\n\"status\": }\n");
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("summary.json:3: not valid JSON") != std::string::npos);

  tmp.write("bad/summary.json", "{\"results\": [{\"stage\": \"kd\", \"test_top1\": \"high\"}]}");
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("summary.json: results[0]: \"test_top1\" should be a number") != std::string::npos);

  tmp.write("bad/pictures/kd.safetensors", "not a safetensors file");
  tmp.write("bad/summary.json", summary_json(90, 87));
  tmp.write("bad/metrics.jsonl", metrics_jsonl());
  tmp.write("bad/resolved.toml", kResolved);
  e = error_of([&] { read_run_dir(dir); });
  CHECK(e.find("pictures/kd.safetensors: byte") != std::string::npos);

  e = error_of([&] { read_run_dir(tmp.path / "absent"); });
  CHECK(e.find("absent: not a directory") != std::string::npos);
  std::filesystem::create_directories(tmp.path / "empty");
  e = error_of([&] { read_run_dir(tmp.path / "empty"); });
  CHECK(e.find("not a run directory") != std::string::npos);
}

TEST_CASE("report: mean and sample standard deviation, grouped by recipe and stage") {
  const MeanStd m = mean_std({1, 2, 3, NAN});
  CHECK(m.n == 3);
  CHECK(m.mean == doctest::Approx(2));
  CHECK(m.std == doctest::Approx(1));
  CHECK(std::isnan(mean_std({5}).std));
  CHECK(std::isnan(mean_std({}).mean));
  TempDir tmp;
  std::vector<RunData> runs = {read_run_dir(make_run(tmp, "s0", 91, 88)), read_run_dir(make_run(tmp, "s1", 93, 89)),
                               read_run_dir(make_run(tmp, "s2", 92, 87, false))};
  const auto groups = group_results(runs);
  REQUIRE(groups.size() == 2);
  CHECK(groups[1].stage == "kd");
  CHECK(groups[1].runs == std::vector<size_t>{0, 1, 2});
  CHECK(groups[1].stats.mean == doctest::Approx(88));
  CHECK(groups[1].stats.std == doctest::Approx(1));
}

TEST_CASE("report: svg text, numbers and ticks") {
  CHECK(svg::escape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
  CHECK(svg::num(0.123456789) == "0.123457");
  CHECK(svg::num(1e-7) == "1e-07");
  CHECK(svg::num(NAN) == "nan");
  const auto ticks = svg::nice_ticks(0, 1, 5);
  REQUIRE(ticks.size() == 6);
  CHECK(ticks[3] == doctest::Approx(0.6));
  CHECK(svg::nice_ticks(3, 97, 5).front() == 20);
  CHECK(svg::tick_text(0.25, 0.05) == "0.25");
  CHECK(svg::tick_text(20000, 5000) == "20k");
  CHECK(svg::tick_text(2e-5, 1e-5) == "2e-05");
  CHECK(svg::hex(svg::palette_color(svg::Palette::diverging, 0.5)) == "#f7f7f7");
  CHECK(svg::hex(svg::palette_color(svg::Palette::grey, 1)) == "#ffffff");
}

TEST_CASE("report: a line chart carries each series' point count and last value") {
  svg::LineChart c;
  c.id = "t.loss", c.title = "Loss <terms>", c.x_label = "step", c.y_label = "loss";
  c.series.push_back({"ce", "", {1, 2, 3, 4}, {2.5, 2, NAN, 1.2345678}, "", false, false});
  c.series.push_back({"empty", "", {1, 2}, {NAN, NAN}, "", false, false});
  c.series.push_back({"kd", "kd (x0.9)", {1, 2}, {3, 1}, "", true, false});
  const std::string s = svg::line_chart(c);
  CHECK(s.starts_with("<svg class=\"chart\" data-chart=\"t.loss\""));
  CHECK(s.find("Loss &lt;terms&gt;") != std::string::npos);
  CHECK(attribute(s, "<polyline data-series=\"ce\"", "data-n") == "3");
  CHECK(attribute(s, "<polyline data-series=\"ce\"", "data-last") == "1.23457");
  CHECK(attribute(s, "<polyline data-series=\"kd\"", "data-last") == "1");
  CHECK(s.find("data-series=\"empty\"") == std::string::npos);
  CHECK(s.find("kd (x0.9)") != std::string::npos);
  c.series.clear();
  CHECK(svg::line_chart(c).empty());
}

TEST_CASE("report: bar chart with error bars, heatmap and tiles") {
  svg::BarChart b;
  b.id = "bars", b.title = "top-1", b.y_label = "%";
  b.bars = {{"teacher", 92.5, 0.25, 3, ""}, {"kd", 88, NAN, 1, ""}};
  const std::string bars = svg::bar_chart(b);
  CHECK(attribute(bars, "<rect data-bar=\"teacher\"", "data-value") == "92.5");
  CHECK(attribute(bars, "<rect data-bar=\"teacher\"", "data-error") == "0.25");
  CHECK(attribute(bars, "<rect data-bar=\"kd\"", "data-n") == "1");
  CHECK(bars.find("class=\"errorbar\"") != std::string::npos);
  CHECK(bars.find("92.50 ± 0.25") != std::string::npos);

  svg::Heatmap m;
  m.id = "conf", m.rows = 2, m.cols = 2, m.values = {1, 0, 0.25, 0.75}, m.cell_text = {"40", "0", "10", "30"};
  const std::string small = svg::heatmap(m);
  CHECK(small.find(">30</text>") != std::string::npos);
  CHECK(small.find("<image") == std::string::npos);
  m.rows = m.cols = 50, m.values.assign(2500, 0.5), m.cell_text.clear();
  const std::string large = svg::heatmap(m);
  CHECK(large.find("<image") != std::string::npos);
  CHECK(large.find("data:image/bmp;base64,Qk") != std::string::npos);  // "BM"
  m.values.pop_back();
  CHECK(svg::heatmap(m).empty());  // values do not match the shape

  const svg::Tile t = svg::tile_of({0, 1, 2, 3}, 2, 2, svg::Palette::grey);
  CHECK(t.rgb.size() == 12);
  CHECK(int(t.rgb[0]) == 0);
  CHECK(int(t.rgb[9]) == 255);
}

TEST_CASE("report: the page of one run shows every chart with the runs' numbers") {
  TempDir tmp;
  const RunData run = read_run_dir(make_run(tmp, "run", 91.5, 88.25));
  const std::string html = report_html({run});
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(html.find("<script src") == std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // no link but the SVG namespace
  CHECK(html.find("data-rendered") != std::string::npos);
  const std::string loss = chart_of(html, "r0.kd.loss");
  for (const char* term : {"ce", "kd", "total"})
    CHECK(attribute(loss, fmt::format("<polyline data-series=\"{}\"", term), "data-n") == "4");
  CHECK(attribute(loss, "<polyline data-series=\"kd\"", "data-last") == "0.75");
  CHECK(attribute(loss, "<polyline data-series=\"total\"", "data-last") == "0.725");
  CHECK(loss.find("kd (×0.9)") != std::string::npos);
  CHECK(attribute(chart_of(html, "r0.kd.accuracy"), "<polyline data-series=\"test_top1\"", "data-last") == "82");
  CHECK(attribute(chart_of(html, "r0.kd.accuracy"), "<polyline data-series=\"train_top1\"", "data-n") == "4");
  CHECK(attribute(chart_of(html, "r0.kd.lr"), "<polyline data-series=\"lr\"", "data-last") == "0.025");
  CHECK(attribute(chart_of(html, "r0.kd.grad_norm"), "<polyline data-series=\"grad_norm\"", "data-n") == "4");
  CHECK(attribute(chart_of(html, "r0.kd.images_per_s"), "<polyline", "data-last") == "1004");
  CHECK(attribute(chart_of(html, "r0.kd.stats.kd"), "<polyline data-series=\"top1_agreement\"", "data-last") == "0.9");
  CHECK(chart_of(html, "r0.kd.stats.aft").empty());  // only nulls
  CHECK(attribute(chart_of(html, "r0.teacher.loss"), "<polyline data-series=\"total\"", "data-n") == "2");
  // the results table: every cell's data-value is summary.json's
  CHECK(html.find("<td class=\"num\" data-value=\"88.25\">88.25 %</td>") != std::string::npos);
  CHECK(html.find("<td class=\"num\" data-value=\"691386\">691,386</td>") != std::string::npos);
  CHECK(html.find("<td class=\"num\" data-value=\"3.5\">3.5 s</td>") != std::string::npos);
  // the pictures
  CHECK(html.find("Final test: confusion matrix (96 images, 93.75 % right)") != std::string::npos);
  CHECK(!chart_of(html, "r0.kd.confusion").empty());
  CHECK(!chart_of(html, "r0.kd.fsp.pair0.teacher").empty());
  CHECK(!chart_of(html, "r0.kd.fsp.pair0.student").empty());
  CHECK(!chart_of(html, "r0.kd.fsp.pair0.diff").empty());
  const std::string maps = chart_of(html, "r0.kd.at.maps");
  CHECK(maps.find("2 Pullover") != std::string::npos);  // labels by their Fashion-MNIST names
  CHECK(maps.find("teacher pair0") != std::string::npos);
  CHECK(attribute(chart_of(html, "r0.kd.aft.rho.sorted"), "<polyline", "data-last") == "0.1");
}

TEST_CASE("report: several runs are compared stage by stage") {
  TempDir tmp;
  const std::vector<RunData> runs = {read_run_dir(make_run(tmp, "s0", 91, 88)),
                                     read_run_dir(make_run(tmp, "s1", 93, 89)),
                                     read_run_dir(make_run(tmp, "s2", 92, 87, false))};
  const std::string html = report_html(runs);
  CHECK(html.find("retort report: 3 runs") != std::string::npos);
  const std::string bars = chart_of(html, "cmp.top1");
  CHECK(attribute(bars, "<rect data-bar=\"kd\"", "data-value") == "88");
  CHECK(attribute(bars, "<rect data-bar=\"kd\"", "data-error") == "1");
  CHECK(attribute(bars, "<rect data-bar=\"kd\"", "data-n") == "3");
  CHECK(html.find("<td class=\"num\" data-value=\"3\">3</td>") != std::string::npos);
  const std::string loss = chart_of(html, "cmp.tiny_kd.kd.loss");
  CHECK(attribute(loss, "<polyline data-series=\"s1\"", "data-n") == "4");
  CHECK(attribute(loss, "<polyline data-series=\"s2\"", "data-n") == "2");  // per epoch, no steps.jsonl
  for (int i = 0; i < 3; ++i) CHECK(html.find(fmt::format("data-chart=\"r{}.kd.loss\"", i)) != std::string::npos);
}

TEST_CASE("report: --charts writes each chart of the page as a standalone SVG file") {
  TempDir tmp;
  const std::string html = report_html({read_run_dir(make_run(tmp, "run", 91.5, 88.25))});
  const auto charts = standalone_charts(html);
  size_t in_page = 0;
  for (size_t at = html.find("<svg class=\"chart\""); at != std::string::npos; at = html.find("<svg class=\"chart\"", at + 1))
    ++in_page;
  REQUIRE(charts.size() == in_page);
  for (const auto& [id, text] : charts) {
    INFO(id);
    CHECK(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\""));
    CHECK(text.find("<style>") != std::string::npos);
    CHECK(text.ends_with("</svg>\n"));
    const std::string page_chart = chart_of(html, id);
    CHECK(text.find(page_chart.substr(page_chart.find('>') + 1)) != std::string::npos);  // the same content
  }
  const auto files = write_charts(html, tmp.path / "charts");
  REQUIRE(files.size() == charts.size());
  CHECK(retort::test::read_text(tmp.path / "charts" / "r0.kd.loss.svg") ==
        std::find_if(charts.begin(), charts.end(), [](const auto& c) { return c.first == "r0.kd.loss"; })->second);
}

TEST_CASE("report: steps trained again after a resume replace the rows they repeat") {
  std::vector<std::string> notes;
  const std::string text =
      "{\"stage\":\"a\",\"step\":10,\"loss\":1}\n{\"stage\":\"a\",\"step\":20,\"loss\":2}\n"
      "{\"stage\":\"a\",\"step\":30,\"loss\":3}\n{\"stage\":\"a\",\"step\":20,\"loss\":2.5}\n"
      "{\"stage\":\"a\",\"step\":30,\"loss\":3.5}\n{\"stage\":\"b\",\"step\":10,\"loss\":9}\n";
  const std::vector<StepRow> rows = read_steps(text, "steps.jsonl", notes);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].step == 10);
  CHECK(rows[1].loss == 2.5);
  CHECK(rows[2].loss == 3.5);
  CHECK(rows[3].stage == "b");
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("2 rows") != std::string::npos);
}
