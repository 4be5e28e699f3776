// `--set key=value` overrides: dotted paths, stage and loss indices, TOML or bare values,
// and errors for bad paths naming the nearest key.
#include <doctest/doctest.h>
#include "recipe_test_util.h"
#include "train/recipe.h"

using namespace retort;
using retort::test::error_of;

namespace {

const char* kRecipe = R"([run]
name = "base"

[models.teacher]
arch = "resnet20"

[models.student]
arch = "resnet8"

[[stages]]
name = "teach"
train = "teacher"
epochs = 10

[[stages]]
name = "distill"
train = "student"
teachers = ["teacher"]
epochs = 20
losses = [{ name = "ce", weight = 0.1 }, { name = "kd", weight = 0.9, teacher = "teacher" }]
)";

Recipe with(const std::vector<std::string>& sets) { return parse_recipe(kRecipe, "o.toml", sets); }

}  // namespace

TEST_CASE("recipe --set: scalars, stage indices and names, new keys and value types") {
  const Recipe base = with({});
  CHECK(base.run.seed == 0);

  const Recipe r = with({"run.seed=2", "data.labelled_per_class=100", "models.student.arch=resnet32",
                         "stages.0.epochs=3", "stages.distill.optimizer.lr=0.5", "stages.1.losses.kd.T=8",
                         "stages.1.losses.0.weight=0.25", "data.augment.hflip=true", "run.name=2026",
                         "data.mean=[0.5]", "models.teacher.arch=wrn_16_2", "models.teacher.options.dropout=0.5",
                         "stages.1.data=unlabelled"});
  CHECK(r.run.seed == 2);
  CHECK(r.data.labelled_per_class == 100);
  CHECK(r.model("student").arch == "resnet32");  // a bare word is a string
  CHECK(r.stages[0].epochs == 3);
  CHECK(r.stages[1].epochs == 20);
  CHECK(r.stage("distill").optimizer.lr == 0.5);
  CHECK(loss_args(r, r.stages[1].losses[1]).number("T") == 8.0);
  CHECK(r.stages[1].losses[0].weight == 0.25);
  CHECK(r.data.augment.hflip);
  CHECK(r.run.name == "2026");  // a text key keeps the text, not the integer
  CHECK(r.data.mean == std::vector<double>{0.5});
  CHECK(r.model("teacher").options.at("dropout") == 0.5);
  CHECK(r.stages[1].data == StageData::unlabelled);

  // Whole tables and arrays, and quoted strings.
  const Recipe t = with({"stages.0.schedule={type=\"cosine\", min_lr=0.001}", "stages.1.teachers=[]",
                         "stages.1.losses=[{name=\"ce\"}]", "run.device=\"cpu\""});
  CHECK(t.stages[0].schedule.type == ScheduleKind::cosine);
  CHECK(t.stages[0].schedule.min_lr == 0.001);
  CHECK(t.stages[1].teachers.empty());
  REQUIRE(t.stages[1].losses.size() == 1);
  CHECK(t.run.device == "cpu");

  // A list of names may be given bare and comma-separated.
  CHECK(with({"stages.1.teachers=teacher"}).stages[1].teachers == std::vector<std::string>{"teacher"});
  CHECK(error_of([] { with({"stages.1.teachers=teacher, studnt"}); }) ==
        "--set stages.1.teachers=teacher, studnt: key 'teachers' in [stages] names an undefined model 'studnt'; "
        "did you mean 'student'?");

  // Later overrides win; the result is an ordinary recipe that round-trips.
  const Recipe u = with({"run.seed=2", "run.seed=5"});
  CHECK(u.run.seed == 5);
  CHECK(parse_recipe(to_toml(r), "r.toml") == r);
}

TEST_CASE("recipe --set: a bad path or value is an error naming it and the nearest key") {
  CHECK(error_of([] { with({"run.sed=2"}); }) == "--set run.sed=2: unknown key 'sed' in [run]; did you mean 'seed'?");
  CHECK(error_of([] { with({"stages.0.optimizer.lerning_rate=0.1"}); }) ==
        "--set stages.0.optimizer.lerning_rate=0.1: unknown key 'lerning_rate' in [stages.optimizer]; did you mean "
        "'lr'?");
  CHECK(error_of([] { with({"models.teachr.arch=resnet8"}); }) ==
        "--set models.teachr.arch=resnet8: the recipe has no model 'teachr'; did you mean 'teacher'?");
  CHECK(error_of([] { with({"stages.5.epochs=1"}); }) ==
        "--set stages.5.epochs=1: index 5 is out of range: [stages] has 2 entries (0 to 1)");
  CHECK(error_of([] { with({"stages.distil.epochs=1"}); }) ==
        "--set stages.distil.epochs=1: [stages] has no entry 'distil' (use an index 0 to 1 or a name); did you "
        "mean 'distill'?");
  CHECK(error_of([] { with({"stages.1.losses.kd.temperature=2"}); }) ==
        "--set stages.1.losses.kd.temperature=2: unknown key 'temperature' in [stages.losses.kd]; did you mean 'T'?");
  CHECK(error_of([] { with({"run.seed.x=1"}); }) ==
        "--set run.seed.x=1: 'seed' in [run] is a value, not a table; set it directly: run.seed=...");
  CHECK(error_of([] { with({"run.seed"}); }) == "--set expects key=value (e.g. stages.0.epochs=3), got 'run.seed'");
  CHECK(error_of([] { with({"dta.root=x"}); }) == "--set dta.root=x: unknown key 'dta' in [root]; did you mean 'data'?");
  // The value is checked like one from the file, and the message points at the --set.
  CHECK(error_of([] { with({"stages.0.epochs=abc"}); }) ==
        "--set stages.0.epochs=abc: key 'epochs' in [stages] must be an integer, got string \"abc\"");
  CHECK(error_of([] { with({"stages.1.train=studnt"}); }) ==
        "--set stages.1.train=studnt: key 'train' in [stages] names an undefined model 'studnt'; did you mean "
        "'student'?");
}
