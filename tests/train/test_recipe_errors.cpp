// Recipe errors: each names the file, the line, the key and what to do, with the exact text.
#include <doctest/doctest.h>
#include "recipe_test_util.h"
#include "train/recipe.h"

using namespace retort;
using retort::test::error_of;
using retort::test::TempDir;

namespace {

// Models and a one-stage KD run; the tests append or change single lines.
const std::string kModels = R"([models.teacher]
arch = "resnet20"
weights = "teacher.safetensors"

[models.student]
arch = "resnet8"
)";

std::string load_error(const TempDir& dir, const std::string& text) {
  const std::string path = dir.write("bad.toml", text);
  return error_of([&] { load_recipe(path); });
}

}  // namespace

TEST_CASE("recipe errors: a misspelt key names file, line, table and the nearest key") {
  TempDir dir;
  const std::string path = (dir.path / "bad.toml").string();
  std::string text = kModels + R"(
[[stages]]
train = "student"
epochs = 2
optimizer = { type = "sgd", lerning_rate = 0.1 }
)";
  CHECK(load_error(dir, text) == path + ":11: unknown key 'lerning_rate' in [stages.optimizer]; did you mean 'lr'?");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepocs = 2\n";
  // The misspelling is reported, and so is the required key it was meant to be.
  CHECK(load_error(dir, text) == path + ":10: unknown key 'epocs' in [stages]; did you mean 'epochs'?\n" + path +
                                     ":8: missing required key 'epochs' in [stages]");

  text = "[runn]\nseed = 1\n" + kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\n";
  CHECK(load_error(dir, text) == path + ":1: unknown key 'runn' in [root]; did you mean 'run'?");

  text = "[data]\naugment = { hflipp = true }\n" + kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\n";
  CHECK(load_error(dir, text) == path + ":2: unknown key 'hflipp' in [data.augment]; did you mean 'hflip'?");

  // Nothing close: the valid keys are listed instead of a guess.
  text = "[run]\nzzzzzzzz = 1\n" + kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\n";
  CHECK(load_error(dir, text) ==
        path + ":2: unknown key 'zzzzzzzz' in [run]; valid keys: name, seed, device, out_dir, log_every_steps");
}

TEST_CASE("recipe errors: wrong types name the key, the line and the expected type") {
  TempDir dir;
  const std::string path = (dir.path / "bad.toml").string();
  std::string text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = \"ten\"\n";
  CHECK(load_error(dir, text) == path + ":10: key 'epochs' in [stages] must be an integer, got string \"ten\"");

  text = "[data]\nmean = [0.5, \"x\"]\n" + kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\n";
  CHECK(load_error(dir, text).starts_with(path + ":2: key 'mean' in [data] must be an array of numbers, got array"));

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\nbatch_size = 0\n";
  CHECK(load_error(dir, text) == path + ":11: key 'batch_size' in [stages] must be at least 1, got integer 0");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\noptimizer = { type = \"sdg\" }\n";
  CHECK(load_error(dir, text) ==
        path + ":11: key 'type' in [stages.optimizer] must be one of sgd, adamw, got 'sdg'; did you mean 'sgd'?");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\noptimizer = { type = \"sgd\", betas = [0.9, 0.99] }\n";
  CHECK(load_error(dir, text) == path +
                                     ":11: key 'betas' in [stages.optimizer] is not used by optimizer type 'sgd' "
                                     "(they are adamw settings)");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\nschedule = { type = \"multistep\" }\n";
  CHECK(load_error(dir, text) == path + ":11: missing required key 'milestones' in [stages.schedule]");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nepochs = 1\nlosses = [\"ce\"]\n";
  CHECK(load_error(dir, text) == path +
                                     ":11: each element of 'losses' in [stages] must be a table like "
                                     "{name = \"ce\", weight = 1.0}, got string \"ce\"");
}

TEST_CASE("recipe errors: a missing required key names the table and its line") {
  TempDir dir;
  const std::string path = (dir.path / "bad.toml").string();
  const std::string text = "[models.student]\nweights = \"s.safetensors\"\n\n[[stages]]\ntrain = \"student\"\nepochs = 1\n";
  CHECK(load_error(dir, text) == path + ":1: missing required key 'arch' in [models.student]");
  CHECK(error_of([] { parse_recipe("[models.m]\narch = \"resnet8\"\n", "x.toml"); }) ==
        "x.toml: the recipe has no stages: add at least one [[stages]] table with train = \"<model>\"");
  CHECK(error_of([] { parse_recipe("[run]\nseed = = 1\n", "x.toml"); }).starts_with("x.toml:2:8: TOML syntax error:"));
  CHECK(error_of([] { load_recipe("/nonexistent/recipe.toml"); }) ==
        "cannot read recipe '/nonexistent/recipe.toml': No such file or directory");
}

TEST_CASE("recipe errors: references must name defined models and earlier stages") {
  TempDir dir;
  const std::string path = (dir.path / "bad.toml").string();
  std::string text = kModels + "\n[[stages]]\ntrain = \"studnt\"\nepochs = 1\n";
  CHECK(load_error(dir, text) ==
        path + ":9: key 'train' in [stages] names an undefined model 'studnt'; did you mean 'student'?");

  text = kModels + "\n[[stages]]\ntrain = \"student\"\nteachers = [\"teachr\"]\nepochs = 1\n";
  CHECK(load_error(dir, text) ==
        path + ":10: key 'teachers' in [stages] names an undefined model 'teachr'; did you mean 'teacher'?");

  text = kModels + R"(
[[stages]]
train = "student"
epochs = 1
losses = [{ name = "kd", teacher = "teacher" }]
)";
  CHECK(load_error(dir, text) == path +
                                     ":11: key 'teacher' in [stages.losses.kd] names model 'teacher', which is not a "
                                     "teacher of stage 'stage0': add it to the stage's teachers = [...]");

  // A teacher without weights must be trained by an earlier stage.
  text = "[models.t]\narch = \"resnet20\"\n[models.s]\narch = \"resnet8\"\n"
         "[[stages]]\ntrain = \"s\"\nteachers = [\"t\"]\nepochs = 1\n";
  CHECK(load_error(dir, text) == path +
                                     ":7: teacher 't' of stage 'stage0' has no weights: give [models.t] a weights "
                                     "file or train it in an earlier stage");

  text = "[models.t]\narch = \"resnet20\"\nfrom_stage = \"teech\"\n[models.s]\narch = \"resnet8\"\n"
         "[[stages]]\nname = \"teach\"\ntrain = \"t\"\nepochs = 1\n"
         "[[stages]]\ntrain = \"s\"\nteachers = [\"t\"]\nepochs = 1\n";
  CHECK(load_error(dir, text) ==
        path + ":3: key 'from_stage' in [models.t] names an undefined stage 'teech'; did you mean 'teach'?");

  text = "[models.t]\narch = \"resnet20\"\nfrozen = true\nweights = \"t.safetensors\"\n"
         "[[stages]]\ntrain = \"t\"\nepochs = 1\n";
  CHECK(load_error(dir, text) ==
        path + ":6: stage 'stage0' trains model 't', which is frozen (frozen = true in [models.t])");
}

TEST_CASE("recipe errors: loss terms are checked against their registered schema") {
  TempDir dir;
  const std::string path = (dir.path / "bad.toml").string();
  auto with_loss = [&](const std::string& loss) {
    return kModels + "\n[[stages]]\ntrain = \"student\"\nteachers = [\"teacher\"]\nepochs = 1\nlosses = [\n  " + loss +
           "\n]\n";
  };
  CHECK(load_error(dir, with_loss("{ name = \"kd\", teacher = \"teacher\", temperature = 2.0 }")) ==
        path + ":13: unknown key 'temperature' in [stages.losses.kd]; did you mean 'T'?");
  CHECK(load_error(dir, with_loss("{ name = \"kd\", teacher = \"teacher\", t = 2.0 }")) ==
        path + ":13: unknown key 't' in [stages.losses.kd]; did you mean 'T'?");
  CHECK(load_error(dir, with_loss("{ name = \"kd\", teacher = \"teacher\", T = \"4\" }")) ==
        path + ":13: key 'T' in [stages.losses.kd] must be a number, got string \"4\"");
  CHECK(load_error(dir, with_loss("{ name = \"kd\", T = 4.0 }")) ==
        path + ":13: missing required key 'teacher' in [stages.losses.kd]");
  CHECK(load_error(dir, with_loss("{ name = \"kdd\", teacher = \"teacher\" }")) ==
        path + ":13: unknown loss 'kdd' in [stages.losses]; did you mean 'kd'?");
  CHECK(load_error(dir, with_loss("{ weight = 1.0 }")) ==
        path + ":13: missing required key 'name' in [stages.losses]: each loss term names its kind, e.g. name = \"kd\"");
}

TEST_CASE("recipe errors: model lists in loss terms (several teachers) are references too") {
  register_loss_schema("test_multi", {ParamSpec("teachers", ValueKind::models, kRequired)});
  const std::string head = "[models.a]\narch = \"vit_tiny\"\nweights = \"a.safetensors\"\n"
                           "[models.b]\narch = \"resnet20\"\nweights = \"b.safetensors\"\n"
                           "[models.s]\narch = \"resnet8\"\n"
                           "[[stages]]\ntrain = \"s\"\nteachers = [\"a\", \"b\"]\nepochs = 1\n";
  const Recipe ok = parse_recipe(head + "losses = [{ name = \"test_multi\", teachers = [\"a\", \"b\"] }]\n", "m.toml");
  CHECK(loss_args(ok, ok.stages[0].losses[0]).strings("teachers") == std::vector<std::string>{"a", "b"});
  CHECK(error_of([&] { parse_recipe(head + "losses = [{ name = \"test_multi\", teachers = [\"a\", \"c\"] }]\n", "m.toml"); }) ==
        "m.toml:13: key 'teachers' in [stages.losses.test_multi] names an undefined model 'c'; did you mean 'a'?");
  CHECK(error_of([&] { parse_recipe(head + "losses = [{ name = \"test_multi\", teachers = \"a\" }]\n", "m.toml"); }) ==
        "m.toml:13: key 'teachers' in [stages.losses.test_multi] must be an array of model names, got string \"a\"");
}
