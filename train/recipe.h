// The typed recipe: what a `retort run RECIPE` file says (run, data, models, stages, losses),
// with every default filled in, plus loading (with --set overrides), validation and writing
// the resolved recipe back as TOML. Parsing lives in recipe.cpp/recipe_parse_*.cpp,
// overrides in recipe_overrides.cpp, writing in recipe_writer.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "engine/autocast.h"
#include "engine/memory_format.h"
#include "models/import_weights.h"
#include "train/recipe_schema.h"

namespace retort {

// Where something came from in the recipe file. Positions never take part in equality, so a
// recipe re-parsed from its resolved TOML compares equal to the original.
struct SourcePos {
  int line = 0;  // 1-based; 0 when unknown (defaults, --set values)
  bool operator==(const SourcePos&) const { return true; }
};

enum class DatasetKind { fashion_mnist, cifar10, cifar100, folder };
enum class OptimizerKind { sgd, adamw };
enum class ScheduleKind { multistep, cosine, constant };
// labelled: the labelled images (all of them, or labelled_per_class each); unlabelled: the
// rest, without labels; all: every training image, without labels; pool: the unlabelled
// images WITH their labels (only to train a stand-in "foundation" teacher in few-label studies).
enum class StageData { labelled, unlabelled, all, pool };
// What a stage trains of its model: everything, only the classifier head (a linear probe: the
// body stays frozen and in eval mode), or nothing (the model stays frozen, in eval mode; only
// the loss terms' own parts train, as FT's paraphraser does in a stage of its own).
enum class Trainable { all, head, none };
// Teacher-feature cache of a stage: auto (memory when every teacher is frozen and the data
// is not augmented), off, memory, or file (also kept on disk, keyed by weights, data, tap).
enum class TeacherCache { auto_, off, memory, file };
// How a stage's frozen teachers run their forward (models/fold_batch_norm.h): with BatchNorm folded
// into the convolutions and conv + bias + residual + ReLU fused, or as trained. auto: folded on
// CUDA, as trained on the CPU (where CPU results stay bit-identical to earlier runs).
enum class TeacherInference { auto_, folded, as_is };
// BatchNorm under data parallelism: statistics of the whole global batch (SyncBN), or of each
// rank's (or micro-batch's) slice, the running statistics then averaged over the slices.
enum class BatchNormMode { sync, per_rank };
// Which of a stage's models it hands on: the epoch best on validation, or the last epoch's.
enum class KeepModel { best, last };

const char* to_string(DatasetKind kind);
const char* to_string(OptimizerKind kind);
const char* to_string(ScheduleKind kind);
const char* to_string(StageData kind);
const char* to_string(Trainable kind);
const char* to_string(TeacherCache kind);
const char* to_string(TeacherInference kind);
const char* to_string(BatchNormMode kind);
const char* to_string(KeepModel kind);
using models::to_string;
inline const char* to_string(Precision p) { return precision_name(p); }
inline const char* to_string(MemoryFormat f) { return memory_format_name(f); }

struct RunSettings {
  std::string name;             // default: the recipe file's stem
  int64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::string out_dir = "runs";
  int64_t log_every_steps = 10;  // steps.jsonl: every N-th step's terms, lr, gradient norm, statistics (0: off)
  bool operator==(const RunSettings&) const = default;
};

struct AugmentSettings {
  int64_t random_crop_padding = 0;
  bool hflip = false;
  bool operator==(const AugmentSettings&) const = default;
};

struct DataSettings {
  DatasetKind dataset = DatasetKind::fashion_mnist;
  std::string root;            // fashion-mnist default: /usr/share/datasets/fashion-mnist
  int64_t image_size = 0;      // defaults: 28 fashion-mnist, 32 cifar
  int64_t channels = 0;        // defaults: 1 fashion-mnist, 3 otherwise
  std::vector<double> mean;    // one per channel; defaults are the dataset's statistics
  std::vector<double> std;
  AugmentSettings augment;
  int64_t labelled_per_class = 0;  // 0 = every labelled image
  int64_t val_size = 0;            // images held out of the training set for validation
  int64_t train_subset = 0;        // >0: keep only this many training images (seeded, class-balanced)
  int64_t workers = 2;
  std::string extra_unlabelled_folder;  // images added to the unlabelled transfer set
  // Preprocessing of image-folder data as pretrained teachers expect it (torchvision's Resize +
  // CenterCrop): the shorter side resized to `resize`, then an image_size x image_size centre crop
  // (0: resized straight to image_size), with this interpolation.
  int64_t resize = 0;
  std::string interpolation = "bilinear";  // nearest | bilinear | bicubic
  int64_t cache_mb = 1024;  // image folders: decoded images kept in memory (an LRU cache) up to this size
  bool operator==(const DataSettings&) const = default;
};

struct ModelSpec {
  std::string name;
  std::string arch;
  std::string weights;     // safetensors file to start from ("" = none)
  std::string from_stage;  // an earlier stage that trained this model ("" = none)
  // Another model of the recipe whose initial weights this one starts from ("" = its own, seeded
  // from its name): "student alone" and "student with KD" then differ only in the method.
  std::string init_from;
  bool frozen = false;     // never trained by any stage
  int64_t num_classes = 0;  // the classifier's outputs (0: the data's classes)
  // The model's own input (0: the data's): a pretrained teacher's image size and channels, the
  // data's images resized and converted to them (models/input_adapter.h).
  int64_t in_channels = 0, image_size = 0;
  // A `weights` file whose classifier is for another task: keep it (it must fit), reset it (a
  // fresh, seeded head of num_classes outputs), or drop it (no classifier: the model's output is
  // its pooled feature, for teachers read through feature taps).
  models::HeadPolicy head = models::HeadPolicy::keep;
  std::map<std::string, double> options;  // width / depth / patch ... overrides
  SourcePos pos;
  bool operator==(const ModelSpec&) const = default;
};

struct OptimizerSettings {
  OptimizerKind type = OptimizerKind::sgd;
  double lr = 0.05;            // adamw default 1e-3
  double momentum = 0.9;       // sgd only
  bool nesterov = false;       // sgd only
  double weight_decay = 5e-4;  // adamw default 1e-2
  std::vector<double> betas = {0.9, 0.999};  // adamw only
  double eps = 1e-8;                         // adamw only
  bool no_decay_norm_bias = false;  // no weight decay on norm weights and biases
  bool operator==(const OptimizerSettings&) const = default;
};

struct ScheduleSettings {
  ScheduleKind type = ScheduleKind::constant;
  std::vector<int64_t> milestones;  // multistep: epochs where lr *= gamma
  double gamma = 0.1;               // multistep only
  double warmup_epochs = 0;         // linear warm-up, any schedule
  double min_lr = 0;                // cosine only
  bool operator==(const ScheduleSettings&) const = default;
};

struct LossParam {
  ParamValue value;
  SourcePos pos;
  bool operator==(const LossParam&) const = default;
};

// One weighted term of a stage's loss. `params` holds the loss-specific keys, validated
// against the registered schema for `name` with its defaults filled.
struct LossTerm {
  std::string name;
  double weight = 1.0;
  std::map<std::string, LossParam> params;
  SourcePos pos;
  bool operator==(const LossTerm&) const = default;
};

struct StageSpec {
  std::string name;                   // default: stage<index>
  std::string train;                  // the model this stage trains
  std::vector<std::string> teachers;  // models frozen during the stage
  int64_t epochs = 1;
  int64_t batch_size = 128;
  int64_t eval_every = 1;             // epochs between evaluations
  OptimizerSettings optimizer;
  ScheduleSettings schedule;
  double clip_grad_norm = 0;          // 0 = no clipping
  StageData data = StageData::labelled;
  Trainable trainable = Trainable::all;
  bool reset_head = false;            // re-initialise the classifier head first (a new task head)
  // Transfer-set curation by retrieval: keep, from the stage's (unlabelled) data, the
  // retrieve_k nearest neighbours (cosine, `retrieve_tap` of model `retrieve_with`, default
  // the stage's first teacher) of every labelled image. 0 = use all of it.
  int64_t retrieve_k = 0;
  std::string retrieve_with;
  std::string retrieve_tap = "pooled";
  TeacherCache teacher_cache = TeacherCache::auto_;
  TeacherInference teacher_inference = TeacherInference::auto_;
  // Each global batch as this many micro-batches per process, computed one after the other
  // exactly as that many data-parallel ranks would compute them (gradient accumulation).
  int64_t micro_batches = 1;
  BatchNormMode batch_norm = BatchNormMode::sync;  // only matters with several ranks or micro-batches
  // The step's arithmetic (engine/autocast.h): f32; TF32 tensor cores for f32 GEMMs and
  // convolutions (CUDA only); or bf16 autocast with f32 master weights and f32 reductions.
  Precision precision = Precision::f32;
  // The memory layout of the batch the models see (engine/memory_format.h): NCHW, or
  // channels-last (NHWC memory), which cuDNN's tensor-core convolutions prefer.
  MemoryFormat memory_format = MemoryFormat::contiguous;
  // Train with each step replayed as one CUDA graph (train/graph_steps.h): CUDA, one process.
  bool cuda_graph = false;
  // The model the stage hands on (to later stages and models/<model>.safetensors): the epoch
  // best on validation (data.val_size > 0; else the last), or the last.
  KeepModel keep = KeepModel::best;
  std::vector<LossTerm> losses;       // default: one "ce" term
  SourcePos pos;
  bool operator==(const StageSpec&) const = default;
};

struct Recipe {
  std::string source;  // the file it came from ("" when parsed from text); not compared
  RunSettings run;
  DataSettings data;
  std::map<std::string, ModelSpec> models;
  std::vector<StageSpec> stages;

  bool operator==(const Recipe& other) const {
    return run == other.run && data == other.data && models == other.models && stages == other.stages;
  }
  const ModelSpec& model(std::string_view name) const;  // throws when absent
  const StageSpec& stage(std::string_view name) const;  // throws when absent
  // "file:line" for error messages of later phases (trainer, model builder).
  std::string where(const SourcePos& pos) const;
};

// A loss term's checked arguments, as the loss is built from them (transfer/loss_schema.h):
// its parameters and "file:line" of the term.
LossArgs loss_args(const Recipe& recipe, const LossTerm& term);

// Reads a recipe file, applies `--set key=value` overrides (in order), and validates it.
// Throws retort::Error listing every problem, each as "file:line: what; did you mean ...".
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `source_name` is used in messages and as the default run name.
Recipe parse_recipe(std::string_view text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});

// The resolved recipe (all defaults filled) as TOML that parses back to an equal Recipe.
std::string to_toml(const Recipe& recipe);

// Checks that the files a recipe names exist (data root, weights, extra folder); throws an
// Error naming each missing one with its recipe line. Separate from parsing so recipes can
// be parsed and resolved on machines without the data.
void check_recipe_files(const Recipe& recipe);

}  // namespace retort
