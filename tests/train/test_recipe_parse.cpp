// Recipe parsing: values, defaults, loss parameters, and the resolved-TOML round trip.
#include <doctest/doctest.h>
#include <cmath>
#include "recipe_test_util.h"
#include "train/recipe.h"
#include "transfer/loss_term.h"

using namespace retort;
using retort::test::TempDir;

namespace {

// A two-stage recipe: train a teacher, then distil it into a student with CE + KD.
const char* kTwoStage = R"(# Teacher then KD student on Fashion-MNIST
[run]
name = "kd-test"
seed = 7

[data]
dataset = "fashion-mnist"
augment = { random_crop_padding = 2, hflip = true }
labelled_per_class = 100

[models.teacher]
arch = "resnet20"

[models.student]
arch = "vit_tiny"
options = { dropout = 0.25, depth = 2 }

[[stages]]
name = "teach"
train = "teacher"
epochs = 3
optimizer = { type = "sgd", lr = 0.1, nesterov = true }
schedule = { type = "multistep", milestones = [2], gamma = 0.2 }

[[stages]]
name = "distill"
train = "student"
teachers = ["teacher"]
epochs = 5
batch_size = 64
data = "all"
optimizer = { type = "adamw", lr = 2e-3, betas = [0.8, 0.99] }
schedule = { type = "cosine", warmup_epochs = 1 }
losses = [
  { name = "ce", weight = 0.1 },
  { name = "kd", weight = 0.9, teacher = "teacher", T = 2 },
]
)";

}  // namespace

TEST_CASE("recipe: a valid recipe parses with its values and defaults") {
  TempDir dir;
  const std::string path = dir.write("kd.toml", kTwoStage);
  const Recipe r = load_recipe(path);
  CHECK(r.source == path);
  CHECK(r.run.name == "kd-test");
  CHECK(r.run.seed == 7);
  CHECK(r.run.device == "auto");
  CHECK(r.run.out_dir == "runs");

  CHECK(r.data.dataset == DatasetKind::fashion_mnist);
  CHECK(r.data.root == "/usr/share/datasets/fashion-mnist");
  CHECK(r.data.image_size == 28);
  CHECK(r.data.channels == 1);
  CHECK(r.data.mean == std::vector<double>{0.2860});
  CHECK(r.data.std == std::vector<double>{0.3530});
  CHECK(r.data.augment.random_crop_padding == 2);
  CHECK(r.data.augment.hflip);
  CHECK(r.data.labelled_per_class == 100);
  CHECK(r.data.val_size == 0);
  CHECK(r.data.extra_unlabelled_folder.empty());

  REQUIRE(r.models.size() == 2);
  const ModelSpec& student = r.model("student");
  CHECK(student.arch == "vit_tiny");
  CHECK(student.options == std::map<std::string, double>{{"depth", 2.0}, {"dropout", 0.25}});
  CHECK(student.pos.line == 14);
  CHECK_FALSE(student.frozen);
  CHECK(r.model("teacher").weights.empty());

  REQUIRE(r.stages.size() == 2);
  const StageSpec& teach = r.stages[0];
  CHECK(teach.name == "teach");
  CHECK(teach.train == "teacher");
  CHECK(teach.teachers.empty());
  CHECK(teach.epochs == 3);
  CHECK(teach.batch_size == 128);
  CHECK(teach.eval_every == 1);
  CHECK(teach.data == StageData::labelled);
  CHECK(teach.optimizer.type == OptimizerKind::sgd);
  CHECK(teach.optimizer.lr == 0.1);
  CHECK(teach.optimizer.momentum == 0.9);
  CHECK(teach.optimizer.nesterov);
  CHECK(teach.optimizer.weight_decay == 5e-4);
  CHECK(teach.schedule.type == ScheduleKind::multistep);
  CHECK(teach.schedule.milestones == std::vector<int64_t>{2});
  CHECK(teach.schedule.gamma == 0.2);
  REQUIRE(teach.losses.size() == 1);  // default: plain CE
  CHECK(teach.losses[0].name == "ce");
  CHECK(teach.losses[0].weight == 1.0);
  CHECK(loss_args(r, teach.losses[0]).number("label_smoothing") == 0.0);

  const StageSpec& distill = r.stage("distill");
  CHECK(distill.pos.line == 25);
  CHECK(distill.teachers == std::vector<std::string>{"teacher"});
  CHECK(distill.batch_size == 64);
  CHECK(distill.data == StageData::all);
  CHECK(distill.optimizer.type == OptimizerKind::adamw);
  CHECK(distill.optimizer.lr == 2e-3);
  CHECK(distill.optimizer.betas == std::vector<double>{0.8, 0.99});
  CHECK(distill.optimizer.eps == 1e-8);
  CHECK(distill.optimizer.weight_decay == 1e-2);
  CHECK(distill.schedule.type == ScheduleKind::cosine);
  CHECK(distill.schedule.warmup_epochs == 1.0);
  CHECK(distill.schedule.min_lr == 0.0);
  REQUIRE(distill.losses.size() == 2);
  const LossTerm& kd_term = distill.losses[1];
  CHECK(kd_term.name == "kd");
  CHECK(kd_term.weight == 0.9);
  CHECK(kd_term.params.at("T").pos.line == 36);
  const LossArgs kd = loss_args(r, kd_term);
  CHECK(kd.number("T") == 2.0);  // an integer in the file, a number by the schema
  CHECK(kd.string("teacher") == "teacher");
  CHECK(kd.where == path + ":36");
  CHECK_THROWS_WITH_AS(kd.integer("T"), doctest::Contains(":36: loss 'kd' parameter 'T' is not an integer"), Error);
  CHECK_THROWS_AS(kd.number("tau"), Error);
}

TEST_CASE("recipe: default run name is the file stem and cifar needs a root") {
  TempDir dir;
  const std::string minimal = R"(
[models.m]
arch = "resnet8"
[[stages]]
train = "m"
epochs = 1
)";
  const Recipe r = load_recipe(dir.write("my-recipe.toml", minimal));
  CHECK(r.run.name == "my-recipe");
  CHECK(r.stages[0].name == "stage0");
  CHECK(r.stages[0].optimizer == OptimizerSettings{});
  CHECK(r.stages[0].schedule == ScheduleSettings{});

  const std::string cifar = "[data]\ndataset = \"cifar100\"\nroot = \"/data/c100\"\n" + minimal;
  const Recipe c = parse_recipe(cifar, "c.toml");
  CHECK(c.data.image_size == 32);
  CHECK(c.data.channels == 3);
  CHECK(c.data.mean == std::vector<double>{0.5071, 0.4867, 0.4408});
  CHECK(c.data.std == std::vector<double>{0.2675, 0.2565, 0.2761});
  const std::string no_root = "[data]\ndataset = \"cifar10\"\n" + minimal;
  CHECK(retort::test::error_of([&] { parse_recipe(no_root, "c.toml"); }) ==
        "c.toml:1: missing required key 'root' in [data]: dataset 'cifar10' has no default location");
}

TEST_CASE("recipe: resolved TOML re-parses to the same recipe") {
  TempDir dir;
  const Recipe r = load_recipe(dir.write("kd.toml", kTwoStage));
  const std::string resolved = to_toml(r);
  const Recipe again = parse_recipe(resolved, dir.write("resolved.toml", resolved));
  CHECK(again == r);
  CHECK(to_toml(again).substr(to_toml(again).find('\n')) == resolved.substr(resolved.find('\n')));
  // Every default is written out, so a reader of the run directory sees all settings.
  CHECK(resolved.find("val_size = 0") != std::string::npos);
  CHECK(resolved.find("label_smoothing = 0.0") != std::string::npos);
  CHECK(resolved.find("{ name = \"kd\", weight = 0.9, T = 2.0, teacher = \"teacher\" }") != std::string::npos);
  CHECK(resolved.find("weight_decay = 0.0005") != std::string::npos);

  // A model name that is not a bare TOML key, and odd numbers, survive too.
  Recipe odd = r;
  odd.models["big teacher"] = odd.models.at("teacher");
  odd.models["big teacher"].name = "big teacher";
  odd.models["big teacher"].weights = "w \"quoted\".safetensors";
  odd.stages[0].optimizer.lr = 0.1 + 0.2;
  odd.stages[1].losses[1].params["T"].value = 1.0 / 3.0;
  const Recipe odd_again = parse_recipe(to_toml(odd), "odd.toml");
  CHECK(odd_again == odd);
}

TEST_CASE("recipe: a registered loss schema validates and fills its terms") {
  register_loss_schema("test_hint", {ParamSpec("teacher", ValueKind::model, kRequired),
                                     ParamSpec("beta", ValueKind::number, 100.0),
                                     ParamSpec("layers", ValueKind::strings, kOptional),
                                     ParamSpec("pairs", ValueKind::integer, int64_t{3}),
                                     ParamSpec("mode", ValueKind::string, "mse")});
  const std::string text = R"(
[models.t]
arch = "resnet20"
weights = "t.safetensors"
[models.s]
arch = "resnet8"
[[stages]]
train = "s"
teachers = ["t"]
epochs = 2
losses = [{ name = "test_hint", teacher = "t", layers = ["layer1", "layer2"] }]
)";
  const Recipe r = parse_recipe(text, "h.toml");
  const LossArgs term = loss_args(r, r.stages[0].losses[0]);
  CHECK(term.number("beta") == 100.0);
  CHECK(term.integer("pairs") == 3);
  CHECK(term.string("mode") == "mse");
  CHECK(term.strings("layers") == std::vector<std::string>{"layer1", "layer2"});
  CHECK(term.string("teacher") == "t");
  CHECK(parse_recipe(to_toml(r), "again.toml") == r);

  const std::vector<std::string> losses = registered_losses();
  CHECK(std::find(losses.begin(), losses.end(), "kd") != losses.end());
  CHECK_THROWS_AS(register_loss_schema("bad", {ParamSpec("weight", ValueKind::number, 1.0)}), Error);
  CHECK_THROWS_AS(ParamSpec("T", ValueKind::number, "four"), Error);
}

TEST_CASE("recipe: a loss term without a weight gets its method's own default, from the loss's schema") {
  const Recipe r = parse_recipe(R"(
[models.teacher]
arch = "wrn_16_2"
[models.student]
arch = "resnet8"
[[stages]]
name = "teacher"
train = "teacher"
epochs = 1
[[stages]]
name = "student"
train = "student"
epochs = 1
teachers = ["teacher"]
losses = [ { name = "ce" }, { name = "kd", teacher = "teacher" }, { name = "fitnet", teacher = "teacher" },
           { name = "aft", teachers = ["teacher"] }, { name = "kd", teacher = "teacher", weight = 0.5 } ]
)",
                                "defaults.toml");
  const auto& terms = r.stage("student").losses;
  REQUIRE(terms.size() == 5);
  CHECK(terms[0].weight == 1.0);    // ce
  CHECK(terms[1].weight == 0.9);    // kd: Hinton's 0.9 (with 0.1 CE)
  CHECK(terms[2].weight == 100.0);  // fitnet: RepDistiller's beta
  CHECK(terms[3].weight == 10.0);   // aft: the authors' beta
  CHECK(terms[4].weight == 0.5);    // a given weight wins
  for (const auto& name : registered_losses())
    CHECK_MESSAGE(std::isfinite(find_loss_schema(name)->default_weight), name);
}

TEST_CASE("recipe: registered losses are described for `retort list losses`") {
  // What `retort list losses` prints: each loss's one schema, registered with its factory.
  const std::string text = describe_loss_schemas();
  CHECK(text.find("kd  Hinton KD: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), batch mean\n"
                  "    weight           a number, default 0.9  the term's weight in the stage's sum\n"
                  "    teacher          a string naming a model, required  the teacher model whose logits are matched\n"
                  "    T                a number, default 4.0, positive  softmax temperature\n") != std::string::npos);
  CHECK(text.find("ce  cross-entropy with the labels (fused log-softmax, optional label smoothing)\n") !=
        std::string::npos);
  CHECK(param_to_toml(ParamValue(std::vector<std::string>{"a", "b\"c"})) == "[\"a\", \"b\\\"c\"]");
  CHECK(param_to_toml(ParamValue(std::vector<double>{1.0, 0.5})) == "[1.0, 0.5]");
  CHECK(param_to_toml(ParamValue(int64_t{3})) == "3");
}

TEST_CASE("recipe: model options are checked against the architecture and their ranges") {
  auto error_for = [](const std::string& arch, const std::string& options) {
    const std::string text = std::string(kTwoStage);
    const std::string from = "arch = \"vit_tiny\"\noptions = { dropout = 0.25, depth = 2 }";
    REQUIRE(text.find(from) != std::string::npos);
    std::string changed = text;
    changed.replace(text.find(from), from.size(), "arch = \"" + arch + "\"\noptions = { " + options + " }");
    return retort::test::error_of([&] { parse_recipe(changed, "m.toml"); });
  };
  auto expect = [&](const std::string& arch, const std::string& options, const std::string& message) {
    const std::string error = error_for(arch, options);
    INFO(arch << " with { " << options << " }: " << error);
    CHECK(error.find(message) != std::string::npos);
  };
  expect("resnet8", "depth = 2",
         "m.toml:16: [models.student.options] option 'depth' has no effect on resnet8 (it takes no options)");
  expect("wrn_16_2", "depth = 2", "option 'depth' has no effect on wrn_16_2 (it takes: dropout)");
  expect("vit_tiny_patch4_28", "patch_size = 7",
         "option 'patch_size' has no effect on vit_tiny_patch4_28 (it takes: dropout, depth)");
  expect("vit_tiny", "width = 2", "unknown option 'width' (options: dropout, depth, patch_size)");
  expect("vit_tiny", "dropout = 1.0", "option 'dropout' must be in [0, 1), got 1");
  expect("vit_tiny", "dropout = -0.1", "option 'dropout' must be in [0, 1)");
  expect("vit_tiny", "depth = 0", "option 'depth' must be a whole number of at least 1");
  expect("vit_tiny", "patch_size = 2.5", "option 'patch_size' must be a whole number");
  expect("vit_tiny", "dropout = nan", "option 'dropout' must be a finite number");
  expect("vit_tiny", "depth = \"two\"", "option 'depth' must be a finite number, got");
}
