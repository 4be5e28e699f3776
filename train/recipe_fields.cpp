// The field tables of the recipe's tables (see train/recipe_fields.h): one entry per key, in
// the order keys are read and written.
#include "train/recipe_fields.h"
#include <algorithm>
#include <cmath>
#include <optional>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include "models/registry.h"
#include "train/recipe_internal.h"

namespace retort {
namespace {

// ---- field makers: a member, its kind, its default, its checks ----------------------------

template <typename S>
using Fields = std::vector<RecipeField<S>>;

template <typename S>
RecipeField<S> integer_field(std::string key, int64_t S::*member, std::optional<int64_t> at_least, std::string help,
                             bool required = false) {
  std::string kind = at_least ? fmt::format("an integer >= {}", *at_least) : "an integer";
  std::string def = required ? "required" : toml_integer(S{}.*member);
  return {key, kind, def, std::move(help),
          [key, member, at_least, required](TableReader& r, S& s) {
            if (required && !r.require(key)) return;
            s.*member = r.integer_or(key, s.*member);
            if (at_least && r.has(key) && s.*member < *at_least) r.invalid(key, fmt::format("at least {}", *at_least));
          },
          [member](const S& s) { return toml_integer(s.*member); }};
}

template <typename S>
RecipeField<S> number_field(std::string key, double S::*member, std::string must_be,
                            std::function<bool(double)> ok, std::string help) {
  return {key, "a number, " + must_be, toml_number(S{}.*member), std::move(help),
          [key, member, must_be, ok](TableReader& r, S& s) {
            s.*member = r.number_or(key, s.*member);
            if (r.has(key) && !ok(s.*member)) r.invalid(key, must_be);
          },
          [member](const S& s) { return toml_number(s.*member); }};
}

template <typename S>
RecipeField<S> bool_field(std::string key, bool S::*member, std::string help) {
  return {key, "a boolean", toml_bool(S{}.*member), std::move(help),
          [key, member](TableReader& r, S& s) { s.*member = r.boolean_or(key, s.*member); },
          [member](const S& s) { return toml_bool(s.*member); }};
}

template <typename S>
RecipeField<S> string_field(std::string key, std::string S::*member, std::string help, bool required = false) {
  const std::string def = required ? "required" : toml_string(S{}.*member);
  return {key, "a string", def, std::move(help),
          [key, member, required](TableReader& r, S& s) {
            if (required && !r.require(key)) return;
            s.*member = r.string_or(key, s.*member);
          },
          [member](const S& s) { return toml_string(s.*member); }};
}

template <typename S>
RecipeField<S> strings_field(std::string key, std::vector<std::string> S::*member, std::string help) {
  return {key, "an array of strings", "[]", std::move(help),
          [key, member](TableReader& r, S& s) { s.*member = r.strings(key).value_or(s.*member); },
          [member](const S& s) {
            std::string out = "[";
            for (size_t i = 0; i < (s.*member).size(); ++i) out += (i ? ", " : "") + toml_string((s.*member)[i]);
            return out + "]";
          }};
}

// One of a fixed set of names, each an enum value (to_string gives the name back).
template <typename S, typename E>
RecipeField<S> choice_field(std::string key, E S::*member, std::vector<std::pair<std::string, E>> choices,
                            std::string help) {
  std::vector<std::string> names;
  for (const auto& [n, v] : choices) names.push_back(n);
  std::string kind;
  for (const auto& n : names) kind += (kind.empty() ? "" : " | ") + toml_string(n);
  return {key, kind, toml_string(to_string(S{}.*member)), std::move(help),
          [key, member, choices, names](TableReader& r, S& s) {
            if (auto c = r.choice(key, names))
              for (const auto& [n, v] : choices)
                if (n == *c) s.*member = v;
          },
          [member](const S& s) { return toml_string(to_string(s.*member)); }};
}

std::string numbers_text(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + toml_number(v[i]);
  return out + "]";
}

// Dataset statistics adapted to the channel count (mean over channels, or repeated).
std::vector<double> per_channel(const std::vector<double>& stats, int64_t channels) {
  if (int64_t(stats.size()) == channels) return stats;
  double avg = 0;
  for (double s : stats) avg += s / double(stats.size());
  return std::vector<double>(size_t(std::max<int64_t>(channels, 0)), avg);
}

// ---- the tables ----------------------------------------------------------------------------

Fields<RunSettings> make_run_fields() {
  using S = RunSettings;
  Fields<S> f;
  f.push_back({"name", "a string without '/'", "the recipe file's stem", "names the run directory",
               [](TableReader& r, S& s) {
                 s.name = r.string_or("name", s.name);
                 if (s.name.empty() || s.name.find('/') != std::string::npos)
                   r.invalid("name", "a non-empty name without '/' (it names the run directory)");
               },
               [](const S& s) { return toml_string(s.name); }});
  f.push_back(integer_field<S>("seed", &S::seed, std::nullopt, "seeds initialisation, data order and augmentation"));
  f.push_back({"device", "\"auto\" | \"cpu\" | \"cuda\" | \"cuda:N\"", "\"auto\"",
               "where to compute (auto: the GPU when one is usable); --device overrides it",
               [](TableReader& r, S& s) {
                 s.device = r.string_or("device", s.device);
                 const std::string& d = s.device;
                 const bool ok = d == "auto" || d == "cpu" || d == "cuda" ||
                                 (d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
                                  std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; }));
                 if (!ok) r.invalid("device", "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
               },
               [](const S& s) { return toml_string(s.device); }});
  f.push_back(string_field<S>("out_dir", &S::out_dir, "runs go to <out_dir>/<name>-<UTC time> unless --out is given"));
  f.push_back(integer_field<S>("log_every_steps", &S::log_every_steps, 0,
                               "every N-th step writes a steps.jsonl row: each loss term, the total, lr, gradient "
                               "norm, images/s and the terms' own statistics (0: none); --log-steps overrides it"));
  return f;
}

Fields<AugmentSettings> make_augment_fields() {
  using S = AugmentSettings;
  Fields<S> f;
  f.push_back(integer_field<S>("random_crop_padding", &S::random_crop_padding, 0,
                               "pad by this many pixels, then crop back at a random offset (0: off)"));
  f.push_back(bool_field<S>("hflip", &S::hflip, "flip left-right with probability 1/2"));
  return f;
}

Fields<DataSettings> make_data_fields() {
  using S = DataSettings;
  using recipe_detail::dataset_defaults;
  Fields<S> f;
  f.push_back(choice_field<S>("dataset", &S::dataset,
                              {{"fashion-mnist", DatasetKind::fashion_mnist}, {"cifar10", DatasetKind::cifar10},
                               {"cifar100", DatasetKind::cifar100}, {"folder", DatasetKind::folder}},
                              "the data (folder: <root>/train/<class>/*.png and <root>/test/<class>/*.png)"));
  f.push_back({"root", "a path", "Debian's for fashion-mnist, required otherwise", "where the dataset's files are",
               [](TableReader& r, S& s) {
                 const char* def = dataset_defaults(s.dataset).root;
                 if (def || r.has("root")) s.root = r.string_or("root", def ? def : "");
                 else if (!r.has("dataset") || r.node("dataset")->is_string())
                   r.context().error(&r.table(), fmt::format("missing required key 'root' in [data]: dataset '{}' has "
                                                             "no default location",
                                                             to_string(s.dataset)));
               },
               [](const S& s) { return toml_string(s.root); }});
  f.push_back({"image_size", "an integer >= 1", "28 for fashion-mnist, 32 otherwise", "images are resized to this side",
               [](TableReader& r, S& s) {
                 s.image_size = r.integer_or("image_size", dataset_defaults(s.dataset).image_size);
                 if (r.has("image_size") && s.image_size < 1) r.invalid("image_size", "at least 1");
               },
               [](const S& s) { return toml_integer(s.image_size); }});
  f.push_back({"channels", "an integer >= 1", "1 for fashion-mnist, 3 otherwise", "image channels",
               [](TableReader& r, S& s) {
                 s.channels = r.integer_or("channels", dataset_defaults(s.dataset).channels);
                 if (r.has("channels") && s.channels < 1) r.invalid("channels", "at least 1");
               },
               [](const S& s) { return toml_integer(s.channels); }});
  for (const char* key : {"mean", "std"}) {
    const bool is_mean = std::string_view(key) == "mean";
    f.push_back({key, "an array of numbers, one per channel", "the dataset's training-set statistics",
                 is_mean ? "subtracted per channel after scaling pixels to [0, 1]" : "divided per channel (positive)",
                 [key, is_mean](TableReader& r, S& s) {
                   const auto& def = dataset_defaults(s.dataset);
                   std::vector<double>& v = is_mean ? s.mean : s.std;
                   v = r.numbers(key).value_or(per_channel(is_mean ? def.mean : def.std, s.channels));
                   if (r.has(key) && int64_t(v.size()) != s.channels)
                     r.invalid(key, fmt::format("an array of {} numbers (one per channel)", s.channels));
                   if (!is_mean && r.has(key) && std::any_of(v.begin(), v.end(), [](double x) { return !(x > 0); }))
                     r.invalid(key, "positive");
                 },
                 [is_mean](const S& s) { return numbers_text(is_mean ? s.mean : s.std); }});
  }
  f.push_back({"augment", "a table", "{ random_crop_padding = 0, hflip = false }", "training-time augmentation",
               [](TableReader& r, S& s) {
                 if (const toml::table* aug = r.subtable("augment")) {
                   TableReader a(r.context(), *aug, "data.augment", recipe_keys::augment());
                   read_fields(augment_fields(), a, s.augment);
                 }
               },
               [](const S& s) {
                 std::string out = "{ ";
                 for (const auto& af : augment_fields())
                   out += (out.size() > 2 ? ", " : "") + af.key + " = " + af.write(s.augment);
                 return out + " }";
               }});
  f.push_back(integer_field<S>("labelled_per_class", &S::labelled_per_class, 0,
                               "keep labels for this many training images per class, the rest unlabelled (0: all)"));
  f.push_back(integer_field<S>("val_size", &S::val_size, 0, "training images held out for validation"));
  f.push_back(integer_field<S>("train_subset", &S::train_subset, 0,
                               "keep only this many training images, a class-balanced seeded draw (0: all)"));
  f.push_back(integer_field<S>("workers", &S::workers, 0, "data loader threads (0: on the training thread)"));
  f.push_back(string_field<S>("extra_unlabelled_folder", &S::extra_unlabelled_folder,
                              "images added to the unlabelled stages' data (e.g. a retrieval pool)"));
  f.push_back(integer_field<S>("resize", &S::resize, 0,
                               "resize the shorter side to this, then centre-crop image_size (0: resize straight to "
                               "image_size); timm's crop_pct: resize = floor(image_size / crop_pct)"));
  f.push_back({"interpolation", "\"nearest\" | \"bilinear\" | \"bicubic\"", "\"bilinear\"",
               "how images are resized (PIL's antialiased filters, as torchvision on PIL images)",
               [](TableReader& r, S& s) {
                 if (auto c = r.choice("interpolation", {"nearest", "bilinear", "bicubic"})) s.interpolation = *c;
               },
               [](const S& s) { return toml_string(s.interpolation); }});
  f.push_back(integer_field<S>("cache_mb", &S::cache_mb, 0,
                               "image folders: decoded images kept in memory up to this many MiB (0: decode every time)"));
  return f;
}

// Why [models.X.options] key = value is refused for architecture `arch`, or nothing: the key
// must be an option the architecture uses, dropout a probability in [0, 1), depth and
// patch_size whole numbers of at least 1.
std::optional<std::string> model_option_problem(const std::string& arch, const std::string& key,
                                                const toml::node& value) {
  const std::vector<std::string> all = {"dropout", "depth", "patch_size"};
  if (std::find(all.begin(), all.end(), key) == all.end())
    return fmt::format("unknown option '{}' (options: {})", key, fmt::join(all, ", "));
  if (models::is_known_model(arch)) {
    const auto used = models::model_options(arch);
    if (std::find(used.begin(), used.end(), key) == used.end())
      return fmt::format("option '{}' has no effect on {} ({})", key, arch,
                         used.empty() ? "it takes no options" : fmt::format("it takes: {}", fmt::join(used, ", ")));
  }
  const auto number = value.value<double>();
  if (!number || !value.is_number() || !std::isfinite(*number))
    return fmt::format("option '{}' must be a finite number, got {}", key, describe_node(value));
  if (key == "dropout" && !(*number >= 0 && *number < 1))
    return fmt::format("option 'dropout' must be in [0, 1), got {}", *number);
  if (key != "dropout" && (!value.is_integer() || *number < 1))
    return fmt::format("option '{}' must be a whole number of at least 1, got {}", key, describe_node(value));
  return std::nullopt;
}

Fields<ModelSpec> make_model_fields() {
  using S = ModelSpec;
  Fields<S> f;
  f.push_back({"arch", "a string", "required", "the architecture (`retort list models`)",
               [](TableReader& r, S& m) {
                 if (r.require("arch")) m.arch = r.string_or("arch", "");
                 if (r.has("arch") && r.node("arch")->is_string() && !models::is_known_model(m.arch))
                   r.context().error(r.node("arch"),
                                     fmt::format("unknown arch '{}' in [{}]{} (`retort list models`)", m.arch,
                                                 r.display(), suggestion_suffix(m.arch, models::model_names(),
                                                                                "architectures")));
               },
               [](const S& m) { return toml_string(m.arch); }});
  f.push_back(string_field<S>("weights", &S::weights, "a safetensors file to start from (retort, torchvision or timm)"));
  f.push_back(string_field<S>("from_stage", &S::from_stage, "an earlier stage that trained this model"));
  f.push_back(string_field<S>("init_from", &S::init_from,
                              "start from the same initial weights as this model (same arch and options): "
                              "comparisons that differ only in the method"));
  f.push_back(bool_field<S>("frozen", &S::frozen, "never trained by any stage"));
  f.push_back(integer_field<S>("num_classes", &S::num_classes, 0, "the classifier's outputs (0: the data's classes)"));
  f.push_back(integer_field<S>("in_channels", &S::in_channels, 0,
                               "the model's input channels (0: the data's); grey data is repeated to RGB, RGB mixed "
                               "to grey"));
  f.push_back(integer_field<S>("image_size", &S::image_size, 0,
                               "the model's input size (0: the data's); the data's images are resized to it with "
                               "data.interpolation"));
  f.push_back(choice_field<S>("head", &S::head,
                              {{"keep", models::HeadPolicy::keep}, {"reset", models::HeadPolicy::reset},
                               {"drop", models::HeadPolicy::drop}},
                              "the weights file's classifier: load it (keep), leave it out for a fresh head of "
                              "num_classes outputs (reset), or build the model without one (drop: a feature extractor)"));
  f.push_back({"options", "a table of numbers", "{}", "architecture options: dropout, patch_size, depth",
               [](TableReader& r, S& m) {
                 const toml::table* opts = r.subtable("options");
                 if (!opts) return;
                 for (auto&& [key, value] : *opts) {
                   const std::string name(key.str());
                   if (auto problem = model_option_problem(m.arch, name, value))
                     r.context().error(&value, fmt::format("[{}.options] {}", r.display(), *problem));
                   else m.options[name] = *value.value<double>();
                 }
               },
               [](const S& m) {
                 std::string options = "{";
                 // depth and patch_size are whole numbers and are written as integers
                 for (const auto& [k, v] : m.options)
                   options += fmt::format("{} {} = {}", options.size() > 1 ? "," : "", toml_key(k),
                                          k == "dropout" ? toml_number(v) : toml_integer(int64_t(v)));
                 return options + (m.options.empty() ? "}" : " }");
               }});
  return f;
}

Fields<StageSpec> make_stage_fields() {
  using S = StageSpec;
  using namespace recipe_detail;
  Fields<S> f;
  f.push_back(string_field<S>("name", &S::name, "the stage's name"));
  f.back().default_text = "stage<index>";
  f.push_back(string_field<S>("train", &S::train, "the model this stage trains", true));
  f.push_back(strings_field<S>("teachers", &S::teachers, "models frozen during the stage, read by its losses"));
  f.push_back(integer_field<S>("epochs", &S::epochs, 1, "passes over the stage's data", true));
  f.push_back(integer_field<S>("batch_size", &S::batch_size, 1, "images per step"));
  f.push_back(integer_field<S>("eval_every", &S::eval_every, 1, "epochs between test evaluations (and the last)"));
  f.push_back({"optimizer", "a table", "{ type = \"sgd\", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }",
               "sgd or adamw with their settings ([stages.optimizer] below)",
               [](TableReader& r, S& s) {
                 static const toml::table empty;
                 const toml::table* t = r.subtable("optimizer");
                 s.optimizer = parse_optimizer(
                     TableReader(r.context(), t ? *t : empty, "stages.optimizer", recipe_keys::optimizer()));
               },
               [](const S& s) { return optimizer_toml(s.optimizer); }});
  f.push_back({"schedule", "a table", "{ type = \"constant\" }", "the learning-rate schedule ([stages.schedule] below)",
               [](TableReader& r, S& s) {
                 static const toml::table empty;
                 const toml::table* t = r.subtable("schedule");
                 s.schedule = parse_schedule(
                     TableReader(r.context(), t ? *t : empty, "stages.schedule", recipe_keys::schedule()));
               },
               [](const S& s) { return schedule_toml(s.schedule); }});
  f.push_back(number_field<S>("clip_grad_norm", &S::clip_grad_norm, "at least 0 (0 = off)",
                              [](double v) { return v >= 0; }, "clip the gradients' global norm to this (0: off)"));
  f.push_back(choice_field<S>("data", &S::data,
                              {{"labelled", StageData::labelled}, {"unlabelled", StageData::unlabelled},
                               {"all", StageData::all}, {"pool", StageData::pool}},
                              "what the stage trains on (unlabelled and all carry no labels)"));
  f.push_back(choice_field<S>("trainable", &S::trainable,
                              {{"all", Trainable::all}, {"head", Trainable::head}, {"none", Trainable::none}},
                              "all of the model, only its classifier head (a linear probe), or none of it (only the "
                              "losses' own parts train, e.g. FT's paraphraser)"));
  f.push_back(bool_field<S>("reset_head", &S::reset_head, "re-initialise the classifier head first"));
  f.push_back(choice_field<S>("keep", &S::keep, {{"best", KeepModel::best}, {"last", KeepModel::last}},
                              "the model handed on: the epoch best on validation (data.val_size > 0; else the last), "
                              "or the last"));
  f.push_back(integer_field<S>("retrieve_k", &S::retrieve_k, 0,
                               "keep the k nearest neighbours of each labelled image as the transfer set (0: off)"));
  f.push_back(string_field<S>("retrieve_with", &S::retrieve_with, "the model whose taps retrieve (default: the first teacher)"));
  f.push_back(string_field<S>("retrieve_tap", &S::retrieve_tap, "the tap retrieval compares"));
  f.push_back(choice_field<S>("teacher_cache", &S::teacher_cache,
                              {{"auto", TeacherCache::auto_}, {"off", TeacherCache::off},
                               {"memory", TeacherCache::memory}, {"file", TeacherCache::file}},
                              "compute frozen teachers' taps once per image instead of every batch"));
  f.push_back(choice_field<S>("teacher_inference", &S::teacher_inference,
                              {{"auto", TeacherInference::auto_}, {"folded", TeacherInference::folded},
                               {"as_is", TeacherInference::as_is}},
                              "frozen teachers' forward with BatchNorm folded into the convolutions and conv + bias + "
                              "residual + ReLU fused (folded), or as trained (as_is); auto: folded on CUDA"));
  f.push_back(integer_field<S>("micro_batches", &S::micro_batches, 1,
                               "split each batch into this many micro-batches computed one after the other, as that "
                               "many data-parallel ranks would (gradient accumulation)"));
  f.push_back(choice_field<S>("batch_norm", &S::batch_norm,
                              {{"sync", BatchNormMode::sync}, {"per_rank", BatchNormMode::per_rank}},
                              "under data parallelism: BatchNorm statistics of the global batch (sync) or of each "
                              "rank's slice (per_rank; also what micro-batches use)"));
  f.push_back(choice_field<S>("precision", &S::precision,
                              {{"f32", Precision::f32}, {"tf32", Precision::tf32}, {"bf16", Precision::bf16}},
                              "the step's arithmetic: f32; tf32 (TF32 tensor cores for f32 matrix products and "
                              "convolutions, CUDA only); bf16 (autocast: matrix products, convolutions and attention "
                              "in bf16, reductions, norms and losses in f32, f32 master weights)"));
  f.push_back(choice_field<S>("memory_format", &S::memory_format,
                              {{"contiguous", MemoryFormat::contiguous}, {"channels_last", MemoryFormat::channels_last}},
                              "the batch's memory layout: NCHW (contiguous) or NHWC (channels_last), which cuDNN's "
                              "tensor-core convolutions prefer; on the CPU channels_last gives the same values"));
  f.push_back(bool_field<S>("cuda_graph", &S::cuda_graph,
                            "replay each training step as one CUDA graph after two eager steps (CUDA, one process; "
                            "not with dropout, CRD or a teacher cache)"));
  f.push_back({"losses", "an array of loss tables", "[{ name = \"ce\" }]",
               "the weighted loss terms ([stages.losses] below, and `retort list losses`)",
               [](TableReader& r, S& s) {
                 if (const toml::array* losses = r.array("losses")) {
                   if (losses->empty()) r.invalid("losses", "a non-empty array of loss terms");
                   for (const auto& node : *losses) s.losses.push_back(parse_loss(node, r.context()));
                 } else if (!r.has("losses")) {
                   s.losses.push_back(default_loss_term());
                 }
               },
               [](const S& s) {
                 std::string out = "[\n";
                 for (const LossTerm& term : s.losses) out += "  " + loss_toml(term) + ",\n";
                 return out + "]";
               }});
  return f;
}

// A Markdown table cell: '|' would end the cell.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string reference_row(const std::string& key, const std::string& kind, const std::string& def,
                          const std::string& help) {
  return fmt::format("| `{}` | {} | {} | {} |\n", key, cell(kind), cell(def), cell(help));
}

const char* kTableHead = "| key | value | default | meaning |\n|---|---|---|---|\n";

template <typename S>
std::string reference_table(const std::string& title, const Fields<S>& fields) {
  std::string out = fmt::format("### {}\n\n{}", title, kTableHead);
  for (const auto& f : fields) out += reference_row(f.key, f.kind, f.default_text, f.help);
  return out + "\n";
}

}  // namespace

// ---- TOML text ----------------------------------------------------------------------------

std::string toml_string(const std::string& s) { return param_to_toml(ParamValue(s)); }
std::string toml_number(double d) { return param_to_toml(ParamValue(d)); }
std::string toml_integer(int64_t i) { return fmt::format("{}", i); }
std::string toml_bool(bool b) { return b ? "true" : "false"; }
std::string toml_key(const std::string& k) {
  bool bare = !k.empty();
  for (char c : k)
    bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  return bare ? k : toml_string(k);
}

// ---- the tables, built once ---------------------------------------------------------------

const std::vector<RecipeField<RunSettings>>& run_fields() {
  static const auto f = make_run_fields();
  return f;
}
const std::vector<RecipeField<DataSettings>>& data_fields() {
  static const auto f = make_data_fields();
  return f;
}
const std::vector<RecipeField<AugmentSettings>>& augment_fields() {
  static const auto f = make_augment_fields();
  return f;
}
const std::vector<RecipeField<ModelSpec>>& model_fields() {
  static const auto f = make_model_fields();
  return f;
}
const std::vector<RecipeField<StageSpec>>& stage_fields() {
  static const auto f = make_stage_fields();
  return f;
}

template <typename S>
std::string write_fields(const std::vector<RecipeField<S>>& fields, const S& settings) {
  std::string out;
  for (const auto& f : fields) out += toml_key(f.key) + " = " + f.write(settings) + "\n";
  return out;
}
template std::string write_fields(const std::vector<RecipeField<RunSettings>>&, const RunSettings&);
template std::string write_fields(const std::vector<RecipeField<DataSettings>>&, const DataSettings&);
template std::string write_fields(const std::vector<RecipeField<ModelSpec>>&, const ModelSpec&);
template std::string write_fields(const std::vector<RecipeField<StageSpec>>&, const StageSpec&);

std::string recipe_key_reference() {
  std::string out;
  out += reference_table("[run]", run_fields());
  out += reference_table("[data]", data_fields());
  out += reference_table("[data.augment]", augment_fields());
  out += reference_table("[models.NAME]", model_fields());
  out += reference_table("[[stages]]", stage_fields());
  out += fmt::format("### [stages.optimizer]\n\n{}", kTableHead);
  for (const auto& k : recipe_detail::optimizer_key_docs()) out += reference_row(k.key, k.kind, k.default_text, k.help);
  out += fmt::format("\n### [stages.schedule]\n\n{}", kTableHead);
  for (const auto& k : recipe_detail::schedule_key_docs()) out += reference_row(k.key, k.kind, k.default_text, k.help);
  out += "\n### [stages.losses]\n\nEvery term has `name` (its kind, required) and `weight` (a number; its default is "
         "the method's own, e.g. 100 for `fitnet`, 10 for `aft`); its other keys are the loss's own, listed with "
         "their defaults by `retort list losses`.\n";
  return out;
}

}  // namespace retort
