// The HTML page of `retort report` (see train/report_html.h): the sections and their charts; the
// pictures are train/report_pictures.h's, the chart primitives train/report_svg.h's.
#include "train/report_html.h"
#include <algorithm>
#include <fmt/format.h>
#include "engine/version.h"
#include "train/report_pictures.h"
#include "train/report_svg.h"

namespace retort::report {
namespace {

using svg::escape;
using svg::figure;
using svg::LineChart;
using svg::Series;

const char* kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#f6f7f9;margin:0}
main{max-width:1280px;margin:0 auto;padding:8px 24px 40px}
h1{font-size:26px;margin:22px 0 4px}h2{font-size:21px;margin:34px 0 8px;border-bottom:2px solid #dde;padding-bottom:4px}
h3{font-size:17px;margin:26px 0 6px}p.sub{color:#666;margin:0 0 14px}
table{border-collapse:collapse;background:#fff;margin:8px 0 14px;font-size:14px;box-shadow:0 1px 2px #0001}
th,td{padding:5px 12px;border-bottom:1px solid #e6e6ea;text-align:left}th{background:#eef0f4;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:8px 0;font-size:14px}
dl.meta dt{color:#666}dl.meta dd{margin:0}code{background:#eef0f4;padding:1px 4px;border-radius:3px;white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:14px}
figure{background:#fff;margin:0;padding:6px 6px 8px;border-radius:6px;box-shadow:0 1px 3px #0002;max-width:100%}
figcaption{font-size:12.5px;color:#555;padding:2px 8px;width:0;min-width:100%;box-sizing:border-box}
svg.chart{display:block;max-width:100%;height:auto;font-size:12px}
svg .title{font-weight:600;font-size:13.5px;fill:#222}svg .tick{font-size:11px;fill:#555}
svg .label{font-size:12px;fill:#333}svg .legend{font-size:11.5px;fill:#333}svg .note{font-size:11px;fill:#888}
svg .value{font-size:11px;fill:#222}svg .grid{stroke:#ebebeb}svg .frame{fill:none;stroke:#bbb}
svg .errorbar{stroke:#222;stroke-width:1.5;fill:none}svg .cell{font-family:inherit}
.notes{color:#a05a00;font-size:13px}.stage{font-size:14px;color:#333;margin:2px 0 10px}
)";

const char* kSelfCheck = R"(<script>
// self-check for tests: how many charts there are and how many laid out with a non-zero size
(function(){var c=document.querySelectorAll('svg.chart'),n=0;
for(var i=0;i<c.length;i++){var b=c[i].getBBox();if(b.width>0&&b.height>0)n++;}
document.body.setAttribute('data-charts',c.length);document.body.setAttribute('data-rendered',n);})();
</script>
)";

std::string exact(double v) { return std::isfinite(v) ? fmt::format("{}", v) : ""; }

std::string duration(double s) {
  if (!std::isfinite(s)) return "—";
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{} min {} s", int(s / 60), int(s) % 60);
  return fmt::format("{} h {} min", int(s / 3600), int(s / 60) % 60);
}

std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string cell(const std::string& value, const std::string& text, bool numeric) {
  return fmt::format("<td{} data-value=\"{}\">{}</td>", numeric ? " class=\"num\"" : "", escape(value), text);
}

std::string percent(double v) { return std::isfinite(v) ? fmt::format("{:.2f} %", v) : "—"; }

std::string run_label(const RunData& run) { return run.dir.filename().string(); }

// ---- header and results ------------------------------------------------------------------

std::string run_header(const RunData& run) {
  std::string out = "<dl class=\"meta\">";
  auto row = [&](const char* k, const std::string& v) {
    if (!v.empty()) out += fmt::format("<dt>{}</dt><dd>{}</dd>", k, v);
  };
  row("recipe", "<b>" + escape(run.recipe) + "</b>" + (run.source.empty() ? "" : " (" + escape(run.source) + ")"));
  row("run directory", "<code>" + escape(run.dir.string()) + "</code>");
  row("status", escape(run.status));
  row("machine", escape(run.machine));
  row("started (UTC)", escape(run.started_utc));
  row("dataset", escape(run.dataset));
  out += "</dl>\n";
  if (!run.notes.empty()) {
    out += "<ul class=\"notes\">";
    for (const auto& n : run.notes) out += "<li>" + escape(n) + "</li>";
    out += "</ul>\n";
  }
  return out;
}

std::string results_table(const RunData& run, size_t index) {
  if (run.results.empty()) return "<p class=\"sub\">No results yet (summary.json lists none).</p>\n";
  std::string out = fmt::format(
      "<table class=\"results\" data-run=\"{}\"><tr><th>stage</th><th>model</th>"
      "<th>parameters</th><th>test top-1</th><th>test top-5</th><th>wall time</th></tr>\n",
      index);
  for (const auto& r : run.results) {
    out += "<tr>" + cell(r.stage, escape(r.stage), false) + cell(r.model, escape(r.model), false) +
           cell(std::to_string(r.parameters), grouped(r.parameters), true) +
           cell(exact(r.test_top1), percent(r.test_top1), true) + cell(exact(r.test_top5), percent(r.test_top5), true) +
           cell(exact(r.wall_s), duration(r.wall_s), true) + "</tr>\n";
  }
  return out + "</table>\n";
}

std::string stage_description(const StageInfo& s) {
  std::string losses;
  for (const auto& l : s.losses) {
    std::string settings;
    for (const auto& kv : l.settings) settings += (settings.empty() ? "" : ", ") + kv;
    losses += fmt::format("{}{:g}·<b>{}</b>{}", losses.empty() ? "" : " + ", l.weight, escape(l.name),
                          settings.empty() ? "" : " (" + escape(settings) + ")");
  }
  std::string teachers;
  for (const auto& t : s.teachers) teachers += (teachers.empty() ? "" : ", ") + escape(t);
  return fmt::format("<p class=\"stage\">Trains <b>{}</b>{}{} · {} epoch{}, batch {}, {} · loss = {}</p>\n",
                     escape(s.train), s.arch.empty() ? "" : " (" + escape(s.arch) + ")",
                     teachers.empty() ? "" : " from " + teachers, s.epochs, s.epochs == 1 ? "" : "s", s.batch_size,
                     escape(s.optimizer), losses);
}

// ---- training curves ---------------------------------------------------------------------

template <typename Row, typename Fn>
Series series_of(const std::vector<const Row*>& rows, const std::string& name, const std::string& label, Fn value) {
  Series s{name, label, {}, {}, "", false, false};
  for (const Row* r : rows) {
    s.x.push_back(double(r->step));
    s.y.push_back(value(*r));
  }
  return s;
}

bool any_finite(const Series& s) {
  return std::any_of(s.y.begin(), s.y.end(), [](double v) { return std::isfinite(v); });
}

// The names of a map field over the rows, in order of first appearance.
std::vector<std::string> keys_of(const std::vector<const StepRow*>& rows,
                                 const std::map<std::string, double> StepRow::*field) {
  std::vector<std::string> keys;
  for (const StepRow* r : rows)
    for (const auto& kv : r->*field)
      if (std::find(keys.begin(), keys.end(), kv.first) == keys.end()) keys.push_back(kv.first);
  return keys;
}

// Sorts term or stat names ("kd", "aft#2", "kd.top1_agreement") by their loss's place in the stage.
std::vector<std::string> in_loss_order(std::vector<std::string> keys, const StageInfo* info) {
  auto rank = [&](const std::string& key) {
    const std::string base = key.substr(0, std::min(key.find('#'), key.find('.')));
    for (size_t i = 0; info && i < info->losses.size(); ++i)
      if (info->losses[i].name == base) return i;
    return size_t(-1);
  };
  std::stable_sort(keys.begin(), keys.end(), [&](auto& a, auto& b) { return rank(a) < rank(b); });
  return keys;
}

double weight_of(const std::vector<const StepRow*>& rows, const StageInfo* info, const std::string& term) {
  for (auto it = rows.rbegin(); it != rows.rend(); ++it)
    if (auto w = (*it)->weights.find(term); w != (*it)->weights.end()) return w->second;
  if (info)
    for (const auto& l : info->losses)
      if (l.name == term) return l.weight;
  return NAN;
}

LineChart chart(const std::string& id, const std::string& title, const std::string& y_label) {
  LineChart c;
  c.id = id, c.title = title, c.x_label = "training step", c.y_label = y_label;
  return c;
}

std::string loss_chart(const std::string& id, const std::vector<const StepRow*>& steps,
                       const std::vector<const EvalRow*>& evals, const StageInfo* info) {
  LineChart c = chart(id + ".loss", "Loss terms (unweighted) and the weighted total", "loss");
  c.allow_log_y = true;
  for (const auto& term : in_loss_order(keys_of(steps, &StepRow::terms), info)) {
    const double w = weight_of(steps, info, term);
    c.series.push_back(series_of(steps, term, std::isfinite(w) ? fmt::format("{} (×{:g})", term, w) : term,
                                 [&](const StepRow& r) { return r.terms.count(term) ? r.terms.at(term) : NAN; }));
  }
  Series total = series_of(steps, "total", "total (weighted)", [](const StepRow& r) { return r.loss; });
  total.color = "#222", total.dashed = true;
  if (any_finite(total)) c.series.push_back(total);
  if (steps.empty()) {
    c.title = "Loss per epoch (no steps.jsonl)";
    c.series.push_back(series_of(evals, "train_loss", "train loss (epoch mean)", [](auto& r) { return r.train_loss; }));
    c.series.push_back(series_of(evals, "test_loss", "test loss", [](const EvalRow& r) { return r.loss; }));
    return figure(svg::line_chart(c),
                  "The training loss (the weighted total, averaged over each epoch) and the test "
                  "set's cross-entropy.");
  }
  return figure(svg::line_chart(c),
                "Each term as the loss computes it before weighting; the dashed total is the "
                "weighted sum the optimizer minimises.");
}

std::string accuracy_chart(const std::string& id, const std::vector<const StepRow*>& steps,
                           const std::vector<const EvalRow*>& evals) {
  LineChart c = chart(id + ".accuracy", "Top-1 accuracy: training batches and test set", "top-1 accuracy (%)");
  Series train = series_of(steps, "train_top1", "train top-1 (recent batches)", [](auto& r) { return r.train_top1; });
  if (!any_finite(train))
    train = series_of(evals, "train_top1", "train top-1 (epoch mean)", [](const EvalRow& r) { return r.train_top1; });
  c.series.push_back(train);
  Series test = series_of(evals, "test_top1", "test top-1 (per evaluation)", [](const EvalRow& r) { return r.top1; });
  test.markers = true;
  c.series.push_back(test);
  return figure(svg::line_chart(c),
                "Training accuracy is measured on the augmented batches as the model learns; "
                "test accuracy at each evaluation.");
}

std::string step_chart(const std::string& id, const std::string& title, const std::string& y_label,
                       const std::string& name, const std::vector<const StepRow*>& steps, double StepRow::*field,
                       const std::string& caption, bool allow_log = false) {
  LineChart c = chart(id + "." + name, title, y_label);
  c.allow_log_y = allow_log;
  c.series.push_back(series_of(steps, name, y_label, [&](const StepRow& r) { return r.*field; }));
  return figure(svg::line_chart(c), caption);
}

std::string throughput_chart(const std::string& id, const std::vector<const StepRow*>& steps,
                             const std::vector<const EvalRow*>& evals) {
  LineChart c = chart(id + ".images_per_s", "Training throughput", "images/s");
  c.series.push_back(series_of(steps, "images_per_s", "images/s", [](const StepRow& r) { return r.images_per_s; }));
  if (!any_finite(c.series[0]))
    c.series[0] = series_of(evals, "images_per_s", "images/s (epoch)", [](const EvalRow& r) { return r.images_per_s; });
  return figure(svg::line_chart(c),
                "Training images per second (forward and backward of the student, the "
                "teachers' forwards included).");
}

std::string stat_title(const std::string& group) {
  const std::string base = group.substr(0, group.find('#'));
  const std::string which = base == group ? "" : " (" + group + ")";
  if (base == "kd") return "KD: how the student agrees with the teacher" + which;
  if (base == "aft") return "AFT: the learned weights ρ" + which;
  if (base == "at") return "AT: student–teacher attention distance per pair" + which;
  if (base == "dkd") return "DKD: how the student agrees with the teacher" + which;
  if (base == "fsp") return "FSP: student–teacher distance per layer pair" + which;
  if (base == "align_uniform") return "Alignment and uniformity of the embeddings" + which;
  return group + ": statistics";
}

// One chart per stat group ("kd" of "kd.top1_agreement"), from steps.jsonl or else metrics.jsonl.
std::string stat_charts(const std::string& id, const std::vector<const StepRow*>& steps,
                        const std::vector<const EvalRow*>& evals, const StageInfo* info) {
  std::vector<std::pair<std::string, std::vector<Series>>> groups;
  auto add = [&](const std::string& key, Series s) {
    const size_t dot = key.find('.');
    const std::string group = key.substr(0, dot), name = dot == std::string::npos ? key : key.substr(dot + 1);
    s.name = s.label = name;
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == group; });
    if (it == groups.end()) it = groups.insert(groups.end(), {group, {}});
    it->second.push_back(std::move(s));
  };
  for (const auto& key : in_loss_order(keys_of(steps, &StepRow::stats), info))
    add(key, series_of(steps, key, key, [&](const StepRow& r) { return r.stats.count(key) ? r.stats.at(key) : NAN; }));
  if (groups.empty())
    for (const EvalRow* e : evals)
      for (const auto& [key, v] : e->loss_stats) {
        bool seen = false;
        for (auto& g : groups)
          for (auto& s : g.second) seen |= g.first + "." + s.name == key;
        if (!seen)
          add(key, series_of(evals, key, key,
                             [&](const EvalRow& r) { return r.loss_stats.count(key) ? r.loss_stats.at(key) : NAN; }));
      }
  std::string out;
  for (auto& [group, series] : groups) {
    LineChart c = chart(id + ".stats." + group, stat_title(group), "value");
    c.series = std::move(series);
    out += figure(svg::line_chart(c), "");
  }
  return out;
}

std::string stage_section(const RunData& run, size_t index, const std::string& stage) {
  const std::string id = fmt::format("r{}.{}", index, stage);
  const auto steps = run.steps_of(stage);
  const auto evals = run.evals_of(stage);
  const StageInfo* info = run.stage(stage);
  std::string out = fmt::format("<h3 id=\"{}\">Stage {}</h3>\n", escape(id), escape(stage));
  if (info) out += stage_description(*info);
  if (steps.empty() && evals.empty())
    return out + "<p class=\"sub\">Not trained in this run (no steps or metrics).</p>\n";
  out += "<div class=\"grid\">\n" + loss_chart(id, steps, evals, info) + accuracy_chart(id, steps, evals);
  out += step_chart(id, "Learning rate", "learning rate", "lr", steps, &StepRow::lr, "The schedule's value per step.");
  out += step_chart(id, "Gradient norm", "global L2 norm", "grad_norm", steps, &StepRow::grad_norm,
                    "The norm of all gradients together, before any clipping.", true);
  out += throughput_chart(id, steps, evals) + stat_charts(id, steps, evals, info);
  if (const Pictures* p = run.pictures_of(stage)) out += report_pictures(*p, id, run.dataset);
  return out + "</div>\n";
}

std::string run_section(const RunData& run, size_t index, bool several) {
  std::string out = fmt::format("<section class=\"run\" id=\"r{}\">\n", index);
  out += several ? fmt::format("<h2>Run {}: {}</h2>\n", index + 1, escape(run_label(run))) : "";
  out += run_header(run) + (several ? "<h3>Results</h3>\n" : "<h2>Results</h2>\n") + results_table(run, index);
  if (!several) out += "<h2>Stages</h2>\n";
  for (const auto& stage : run.stage_names()) out += stage_section(run, index, stage);
  return out + "</section>\n";
}

// ---- several runs ------------------------------------------------------------------------

std::string runs_table(const std::vector<RunData>& runs) {
  std::string out =
      "<h2>Runs</h2>\n<table class=\"runs\"><tr><th>#</th><th>run directory</th><th>recipe</th>"
      "<th>status</th><th>started (UTC)</th><th>machine</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunData& r = runs[i];
    out += "<tr>" + cell(std::to_string(i + 1), fmt::format("<a href=\"#r{}\">{}</a>", i, i + 1), true) +
           cell(r.dir.string(), "<code>" + escape(r.dir.string()) + "</code>", false) +
           cell(r.recipe, escape(r.recipe), false) + cell(r.status, escape(r.status), false) +
           cell(r.started_utc, escape(r.started_utc), false) + cell(r.machine, escape(r.machine), false) + "</tr>\n";
  }
  return out + "</table>\n";
}

std::string comparison_table(const std::vector<ResultGroup>& groups, const std::vector<RunData>& runs) {
  std::string out =
      "<table class=\"comparison\"><tr><th>recipe</th><th>stage</th><th>model</th><th>n</th>"
      "<th>test top-1 mean</th><th>± std</th><th>min</th><th>max</th><th>per run</th></tr>\n";
  for (const auto& g : groups) {
    std::string per_run;
    for (size_t k = 0; k < g.runs.size(); ++k)
      per_run += fmt::format("{}<span title=\"{}\">{}</span>", k ? ", " : "", escape(run_label(runs[g.runs[k]])),
                             percent(g.top1[k]));
    const auto [lo, hi] = std::minmax_element(g.top1.begin(), g.top1.end());
    out += "<tr>" + cell(g.recipe, escape(g.recipe), false) + cell(g.stage, escape(g.stage), false) +
           cell(g.model, escape(g.model), false) + cell(std::to_string(g.stats.n), std::to_string(g.stats.n), true) +
           cell(exact(g.stats.mean), percent(g.stats.mean), true) +
           cell(exact(g.stats.std), std::isfinite(g.stats.std) ? fmt::format("{:.2f}", g.stats.std) : "—", true) +
           cell(exact(*lo), percent(*lo), true) + cell(exact(*hi), percent(*hi), true) + "<td>" + per_run +
           "</td></tr>\n";
  }
  return out + "</table>\n";
}

std::string comparison_bars(const std::vector<ResultGroup>& groups) {
  bool one_recipe = true;
  for (const auto& g : groups) one_recipe &= g.recipe == groups[0].recipe;
  svg::BarChart c;
  c.id = "cmp.top1", c.y_label = "test top-1 accuracy (%)";
  c.title = "Test top-1 per stage: mean ± sample standard deviation across runs";
  c.width = std::max(580, int(120 * groups.size()) + 80);
  for (const auto& g : groups)
    c.bars.push_back(
        {one_recipe ? g.stage : g.recipe + "\n" + g.stage, g.stats.mean, g.stats.std, int64_t(g.stats.n), ""});
  return figure(svg::bar_chart(c),
                "Error bars: ± one sample standard deviation (n − 1); n: the runs that have the stage.");
}

// The same stage's curves of every run in the group, one colour per run.
std::string overlay_charts(const ResultGroup& g, const std::vector<RunData>& runs) {
  const std::string id = "cmp." + g.recipe + "." + g.stage;
  LineChart loss = chart(id + ".loss", g.stage + ": weighted total loss, run by run", "loss");
  LineChart acc = chart(id + ".accuracy", g.stage + ": top-1 accuracy, run by run", "top-1 accuracy (%)");
  loss.allow_log_y = true;
  for (size_t k = 0; k < g.runs.size(); ++k) {
    const RunData& run = runs[g.runs[k]];
    const std::string name = run_label(run), colour = svg::color(k);
    const auto steps = run.steps_of(g.stage);
    const auto evals = run.evals_of(g.stage);
    Series l = steps.empty()
                   ? series_of(evals, name, name + " (train, epoch mean)", [](auto& r) { return r.train_loss; })
                   : series_of(steps, name, name, [](const StepRow& r) { return r.loss; });
    l.color = colour;
    loss.series.push_back(l);
    Series test = series_of(evals, name + " test", name + " test", [](const EvalRow& r) { return r.top1; });
    test.color = colour, test.markers = true;
    acc.series.push_back(test);
    Series train = series_of(steps, name + " train", name + " train", [](const StepRow& r) { return r.train_top1; });
    train.color = colour, train.dashed = true;
    if (any_finite(train)) acc.series.push_back(train);
  }
  return figure(svg::line_chart(loss), "") +
         figure(svg::line_chart(acc), "Solid with dots: test top-1 per evaluation; dashed: training batches.");
}

std::string comparison_section(const std::vector<RunData>& runs) {
  const auto groups = group_results(runs);
  std::string out =
      "<section id=\"comparison\">\n<h2>Comparison across runs</h2>\n<p class=\"sub\">The same stage of "
      "the same recipe pooled across runs (e.g. seeds): mean ± sample standard deviation of the test "
      "top-1.</p>\n";
  if (groups.empty()) return out + "<p class=\"sub\">No results to compare.</p></section>\n";
  out += comparison_table(groups, runs) + "<div class=\"grid\">\n" + comparison_bars(groups) + "</div>\n";
  std::string overlays;
  for (const auto& g : groups)
    if (g.runs.size() > 1) overlays += overlay_charts(g, runs);
  if (!overlays.empty()) out += "<h3>Curves across runs</h3>\n<div class=\"grid\">\n" + overlays + "</div>\n";
  return out + "</section>\n";
}

}  // namespace

std::string report_html(const std::vector<RunData>& runs) {
  const bool several = runs.size() > 1;
  const std::string title = several ? fmt::format("retort report: {} runs", runs.size())
                                    : "retort report: " + (runs.empty() ? std::string() : runs[0].recipe);
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\">\n<title>" +
      escape(title) + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n<main>\n<h1>" + escape(title) +
      "</h1>\n";
  out += "<p class=\"sub\">Knowledge-distillation runs: results, training curves and what each method learned.</p>\n";
  if (several) out += runs_table(runs) + comparison_section(runs);
  for (size_t i = 0; i < runs.size(); ++i) out += run_section(runs[i], i, several);
  out += fmt::format("<p class=\"sub\">Made by retort {} (<code>retort report</code>).</p>\n</main>\n", version());
  return out + kSelfCheck + "</body></html>\n";
}

}  // namespace retort::report
