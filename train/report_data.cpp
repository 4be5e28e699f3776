// Reading a run directory for `retort report` (see train/report_data.h).
#include "train/report_data.h"
#include <algorithm>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "train/results_table.h"

namespace retort::report {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The line of byte offset `byte` in `text` (1-based).
size_t line_of(const std::string& text, size_t byte) {
  byte = std::min(byte, text.size());
  return 1 + size_t(std::count(text.begin(), text.begin() + long(byte), '\n'));
}

// A number field: absent or null is NaN; anything else but a number is an error.
double number(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return NAN;
  if (!it->is_number()) fail("{}: \"{}\" should be a number, not {}", where, key, it->dump());
  return it->get<double>();
}

int64_t integer(const json& j, const char* key, const std::string& where) {
  const double v = number(j, key, where);
  return std::isfinite(v) ? int64_t(v) : 0;
}

std::string text_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) fail("{}: \"{}\" should be a string, not {}", where, key, it->dump());
  return it->get<std::string>();
}

// An object of numbers ("terms", "stats"): non-numbers are skipped, nulls read as NaN.
std::map<std::string, double> number_map(const json& j, const char* key, const std::string& where) {
  std::map<std::string, double> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) fail("{}: \"{}\" should be an object, not {}", where, key, it->dump());
  for (const auto& [name, v] : it->items())
    if (v.is_number())
      out[name] = v.get<double>();
    else if (v.is_null())
      out[name] = NAN;
  return out;
}

// Each line's JSON object of a JSON-lines file. An unterminated last line that does not parse
// (a run writing it, or killed while it did) is skipped with a note; any other bad line throws.
template <typename Row, typename Fn>
std::vector<Row> json_lines(const std::string& text, const std::string& label, std::vector<std::string>& notes,
                            Fn&& read_row) {
  std::vector<Row> rows;
  size_t begin = 0, line = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = text.size();
    const std::string body = text.substr(begin, end - begin);
    ++line;
    begin = end + 1;
    if (body.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", label, line);
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() && !terminated) {
      notes.push_back(fmt::format("{}: skipped an unfinished last line", where));
      break;
    }
    if (j.is_discarded()) fail("{}: not valid JSON: {}", where, body.substr(0, 80));
    if (!j.is_object()) fail("{}: expected a JSON object, found {}", where, body.substr(0, 80));
    rows.push_back(read_row(j, where));
  }
  return rows;
}

StepRow step_row(const json& j, const std::string& where) {
  StepRow r;
  r.stage = text_field(j, "stage", where);
  r.epoch = integer(j, "epoch", where);
  r.step = integer(j, "step", where);
  r.loss = number(j, "loss", where);
  r.lr = number(j, "lr", where);
  r.images = number(j, "images", where);
  r.images_per_s = number(j, "images_per_s", where);
  r.train_top1 = number(j, "train_top1", where);
  r.grad_norm = number(j, "grad_norm", where);
  r.terms = number_map(j, "terms", where);
  r.weights = number_map(j, "weights", where);
  r.stats = number_map(j, "stats", where);
  return r;
}

EvalRow eval_row(const json& j, const std::string& where) {
  EvalRow r;
  r.stage = text_field(j, "stage", where);
  r.model = text_field(j, "model", where);
  r.split = text_field(j, "split", where);
  r.epoch = integer(j, "epoch", where);
  r.step = integer(j, "step", where);
  r.loss = number(j, "loss", where);
  r.top1 = number(j, "top1", where);
  r.top5 = number(j, "top5", where);
  r.train_loss = number(j, "train_loss", where);
  r.train_top1 = number(j, "train_top1", where);
  r.images_per_s = number(j, "images_per_s", where);
  r.wall_s = number(j, "wall_s", where);
  r.loss_stats = number_map(j, "loss_stats", where);
  return r;
}

// A TOML value as a short text: strings without quotes, everything else as TOML writes it.
std::string toml_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (auto d = node.value_exact<double>()) return fmt::format("{:g}", *d);
  if (auto* array = node.as_array()) {
    std::string out;
    for (const auto& item : *array) {
      if (!out.empty()) out += ',';
      out += toml_text(item);
    }
    return "[" + out + "]";
  }
  std::ostringstream out;
  node.visit([&](const auto& v) { out << v; });
  return out.str();
}

LossInfo loss_info(const toml::table& t) {
  LossInfo loss;
  loss.name = t["name"].value_or(std::string("?"));
  loss.weight = t["weight"].value_or(1.0);
  for (const auto& [key, value] : t)
    if (key != "name" && key != "weight") loss.settings.push_back(fmt::format("{}={}", key.str(), toml_text(value)));
  return loss;
}

std::string optimizer_text(const toml::table& stage) {
  std::string out = stage["optimizer"]["type"].value_or(std::string("sgd"));
  if (auto lr = stage["optimizer"]["lr"].value<double>()) out += fmt::format(" lr {:g}", *lr);
  if (auto s = stage["schedule"]["type"].value<std::string>()) out += ", " + *s;
  return out;
}

StageInfo stage_info(const toml::table& t, const toml::table& root) {
  StageInfo s;
  s.name = t["name"].value_or(std::string());
  s.train = t["train"].value_or(std::string());
  s.arch = root["models"][s.train]["arch"].value_or(std::string());
  s.epochs = t["epochs"].value_or(int64_t(0));
  s.batch_size = t["batch_size"].value_or(int64_t(0));
  s.optimizer = optimizer_text(t);
  if (auto* teachers = t["teachers"].as_array())
    for (const auto& v : *teachers) s.teachers.push_back(v.value_or(std::string()));
  if (auto* losses = t["losses"].as_array())
    for (const auto& v : *losses)
      if (auto* lt = v.as_table()) s.losses.push_back(loss_info(*lt));
  if (s.losses.empty()) s.losses.push_back({"ce", 1.0, {}});
  return s;
}

std::string read_if_present(const fs::path& file) {
  std::error_code ec;
  return fs::is_regular_file(file, ec) ? read_text_file(file) : std::string();
}

}  // namespace

const Array* Pictures::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

const StageInfo* RunData::stage(const std::string& name) const {
  for (const auto& s : stages)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> RunData::stage_names() const {
  std::vector<std::string> names;
  auto add = [&](const std::string& n) {
    if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  };
  for (const auto& s : stages) add(s.name);
  for (const auto& r : results) add(r.stage);
  for (const auto& e : evals) add(e.stage);
  for (const auto& s : steps) add(s.stage);
  return names;
}

std::vector<const StepRow*> RunData::steps_of(const std::string& stage) const {
  std::vector<const StepRow*> out;
  for (const auto& s : steps)
    if (s.stage == stage) out.push_back(&s);
  return out;
}

std::vector<const EvalRow*> RunData::evals_of(const std::string& stage) const {
  std::vector<const EvalRow*> out;
  for (const auto& e : evals)
    if (e.stage == stage && (e.split.empty() || e.split == "test")) out.push_back(&e);
  return out;
}

const Pictures* RunData::pictures_of(const std::string& stage) const {
  for (const auto& p : pictures)
    if (p.stage == stage) return &p;
  return nullptr;
}

void read_summary(const std::string& text, const std::string& label, RunData& run) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}:{}: not valid JSON: {}", label, line_of(text, e.byte), e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", label);
  run.recipe = text_field(j, "recipe", label);
  run.status = text_field(j, "status", label);
  run.started_utc = text_field(j, "started_utc", label);
  run.source = text_field(j, "source", label);
  if (auto m = j.find("machine"); m != j.end() && m->is_object()) run.machine = text_field(*m, "line", label);
  auto results = j.find("results");
  if (results == j.end() || results->is_null()) return;
  if (!results->is_array()) fail("{}: \"results\" should be an array", label);
  for (size_t i = 0; i < results->size(); ++i) {
    const json& r = (*results)[i];
    const std::string where = fmt::format("{}: results[{}]", label, i);
    if (!r.is_object()) fail("{}: expected an object", where);
    ModelResult m;
    m.stage = text_field(r, "stage", where);
    m.model = text_field(r, "model", where);
    m.test_top1 = number(r, "test_top1", where);
    m.test_top5 = number(r, "test_top5", where);
    m.wall_s = number(r, "wall_s", where);
    m.parameters = integer(r, "parameters", where);
    run.results.push_back(m);
  }
}

void read_resolved(const std::string& text, const std::string& label, RunData& run) {
  toml::table root;
  try {
    root = toml::parse(text, label);
  } catch (const toml::parse_error& e) {
    fail("{}:{}: TOML syntax error: {}", label, e.source().begin.line, e.description());
  }
  if (run.recipe.empty()) run.recipe = root["run"]["name"].value_or(std::string());
  run.dataset = root["data"]["dataset"].value_or(std::string());
  run.stages.clear();
  if (auto* stages = root["stages"].as_array())
    for (const auto& v : *stages)
      if (auto* t = v.as_table()) run.stages.push_back(stage_info(*t, root));
}

std::vector<StepRow> read_steps(const std::string& text, const std::string& label, std::vector<std::string>& notes) {
  // A resumed run trains again from its checkpoint, so rows of the steps after it repeat: a row
  // whose step is not past its stage's previous row replaces the rows from that step on.
  std::vector<StepRow> out;
  std::map<std::string, int64_t> last_step;  // per stage
  size_t replaced = 0;
  for (StepRow& row : json_lines<StepRow>(text, label, notes, step_row)) {
    if (auto it = last_step.find(row.stage); it != last_step.end() && row.step <= it->second) {
      const auto before = out.size();
      std::erase_if(out, [&](const StepRow& r) { return r.stage == row.stage && r.step >= row.step; });
      replaced += before - out.size();
    }
    last_step[row.stage] = row.step;
    out.push_back(std::move(row));
  }
  if (replaced > 0)
    notes.push_back(fmt::format("{}: {} rows of steps trained again after a resume were replaced by the later ones",
                                label, replaced));
  return out;
}

std::vector<EvalRow> read_evals(const std::string& text, const std::string& label, std::vector<std::string>& notes) {
  return json_lines<EvalRow>(text, label, notes, eval_row);
}

Pictures read_pictures(const fs::path& file) {
  SafetensorsContents contents = read_safetensors(file.string());
  Pictures p;
  p.file = file.string();
  p.stage = contents.metadata.count("stage") ? contents.metadata.at("stage") : file.stem().string();
  p.model = contents.metadata.count("model") ? contents.metadata.at("model") : "";
  for (const auto& [name, tensor] : contents.tensors) {
    Array a;
    a.shape = tensor.shape();
    a.values = tensor.to_vector();
    p.tensors[name] = std::move(a);
  }
  return p;
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd m;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++m.n;
  if (m.n == 0) return m;
  m.mean = sum / double(m.n);
  if (m.n < 2) return m;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - m.mean) * (v - m.mean);
  m.std = std::sqrt(ss / double(m.n - 1));
  return m;
}

std::vector<ResultGroup> group_results(const std::vector<RunData>& runs) {
  std::vector<ResultGroup> groups;
  for (size_t i = 0; i < runs.size(); ++i)
    for (const auto& r : runs[i].results) {
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const ResultGroup& g) { return g.recipe == runs[i].recipe && g.stage == r.stage; });
      if (it == groups.end())
        it = groups.insert(groups.end(), ResultGroup{runs[i].recipe, r.stage, r.model, {}, {}, {}});
      it->runs.push_back(i);
      it->top1.push_back(r.test_top1);
    }
  for (auto& g : groups) g.stats = mean_std(g.top1);
  return groups;
}

RunData read_run_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory (retort report reads run directories)", dir.string());
  RunData run;
  run.dir = dir;
  const std::string summary = read_if_present(dir / "summary.json");
  const std::string resolved = read_if_present(dir / "resolved.toml");
  if (summary.empty() && resolved.empty())
    fail("{}: not a run directory: it holds neither summary.json nor resolved.toml", dir.string());
  if (!summary.empty())
    read_summary(summary, (dir / "summary.json").string(), run);
  else
    run.notes.push_back("no summary.json");
  if (!resolved.empty())
    read_resolved(resolved, (dir / "resolved.toml").string(), run);
  else
    run.notes.push_back("no resolved.toml");
  run.evals = read_evals(read_if_present(dir / "metrics.jsonl"), (dir / "metrics.jsonl").string(), run.notes);
  run.steps = read_steps(read_if_present(dir / "steps.jsonl"), (dir / "steps.jsonl").string(), run.notes);
  if (fs::is_directory(dir / "pictures", ec)) {
    std::set<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir / "pictures"))
      if (e.path().extension() == ".safetensors") files.insert(e.path());
    for (const auto& f : files) run.pictures.push_back(read_pictures(f));
  }
  if (run.recipe.empty()) run.recipe = dir.filename().string();
  return run;
}

}  // namespace retort::report
