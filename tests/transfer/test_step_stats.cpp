// Loss::step_stats and Loss::pictures of the core methods (KD, DKD, FSP, AT, AFT,
// alignment/uniformity, FitNets): hand-computed agreement statistics, per-pair distances that add
// up to the loss, pictures equal to a direct computation, and no host read while the step
// statistics are computed (they are read by the trainer with the step's other values).
#include <map>
#include <string>
#include "helpers.h"
#include "loss_test_util.h"
#include "transfer/aft.h"
#include "transfer/align_uniform.h"
#include "transfer/at.h"
#include "transfer/dkd.h"
#include "transfer/fitnet.h"
#include "transfer/fsp.h"
#include "transfer/kd.h"
#include "transfer/logit_agreement.h"

using namespace retort;
using models::TapInfo;
using retort::test::check_close;
using retort::test::random_tensor;

namespace {

// The step's taps: the student's and teacher "t"'s, as StepInputs point to them.
struct Step {
  models::Taps student;
  std::map<std::string, models::Taps> teachers;
  Tensor labels;
  transfer::StepInputs inputs() const { return {Tensor(), labels, &student, &teachers}; }
};

// step_stats with the host reads it made (must be none).
std::map<std::string, Tensor> stats_without_host_read(const transfer::Loss& loss, const transfer::StepInputs& in) {
  NoGradGuard no_grad;  // as the trainer calls it
  const int64_t before = host_read_count();
  std::map<std::string, Tensor> stats = loss.step_stats(in);
  CHECK(host_read_count() == before);
  for (const auto& [name, v] : stats) {
    CHECK_MESSAGE(v.numel() == 1, name);
    CHECK_MESSAGE(!v.requires_grad(), name);
  }
  return stats;
}

std::vector<std::string> names_of(const std::map<std::string, Tensor>& m) {
  std::vector<std::string> out;
  for (const auto& [n, v] : m) out.push_back(n);
  return out;
}

// Every buffer's value, to see that a call left them as they were.
std::vector<Tensor> buffer_copies(const nn::NamedTensors& buffers) {
  std::vector<Tensor> out;
  for (const auto& [n, b] : buffers) out.push_back(b.detach().clone());
  return out;
}
void check_buffers_unchanged(const nn::NamedTensors& buffers, const std::vector<Tensor>& before) {
  REQUIRE(buffers.size() == before.size());
  for (size_t i = 0; i < buffers.size(); ++i)
    CHECK_MESSAGE(retort::test::same_bits(buffers[i].second, before[i]), buffers[i].first);
}

// Logits of the hand-worked KD example (T = 2), rows:
//   1: z_s = [2, 0, 0], z_t = [4, 0, 0]: both argmax 0 (agree)
//      p_s = softmax([1, 0, 0]) = [0.576117, 0.211942, 0.211942]
//      p_t = softmax([2, 0, 0]) = [0.786986, 0.106507, 0.106507]
//      overlap = 0.576117 + 2 * 0.106507 = 0.789131; max p_t = 0.786986
//   2: z_s = [0, 2, 0], z_t = [2, 0, 0]: argmax 1 vs 0 (disagree)
//      p_s = [0.211942, 0.576117, 0.211942], p_t = [0.576117, 0.211942, 0.211942]
//      overlap = 3 * 0.211942 = 0.635825; max p_t = 0.576117
//   3: z_s = [0, 3, 3] (a tie: the first maximum, 1), z_t = [0, 2, 1]: argmax 1 vs 1 (agree)
//      p_s = softmax([0, 1.5, 1.5]) = [0.100368, 0.449816, 0.449816]
//      p_t = softmax([0, 1, 0.5])   = [0.186324, 0.506480, 0.307196]
//      overlap = 0.100368 + 0.449816 + 0.307196 = 0.857380; max p_t = 0.506480
//   top1_agreement = 2/3, soft_agreement = (0.789131 + 0.635825 + 0.857380) / 3 = 0.760778,
//   teacher_confidence = (0.786986 + 0.576117 + 0.506480) / 3 = 0.623194
const std::vector<double> kStudentLogits{2, 0, 0, 0, 2, 0, 0, 3, 3};
const std::vector<double> kTeacherLogits{4, 0, 0, 2, 0, 0, 0, 2, 1};

void check_kd_example(const std::map<std::string, Tensor>& s) {
  REQUIRE(names_of(s) == std::vector<std::string>{"soft_agreement", "teacher_confidence", "top1_agreement"});
  CHECK(s.at("top1_agreement").item() == doctest::Approx(2.0 / 3.0).epsilon(1e-6));
  CHECK(s.at("soft_agreement").item() == doctest::Approx(0.7607783945052371).epsilon(1e-6));
  CHECK(s.at("teacher_confidence").item() == doctest::Approx(0.6231944393276939).epsilon(1e-6));
}

Step logit_step(DType dtype) {
  Step st;
  st.student["logits"] = Tensor::from_vector(kStudentLogits, {3, 3}, dtype);
  st.teachers["t"]["logits"] = Tensor::from_vector(kTeacherLogits, {3, 3}, dtype);
  st.labels = Tensor::from_i64({0, 2, 1}, {3});
  return st;
}

}  // namespace

TEST_CASE("step stats: kd agreement on a hand-worked example") {
  for (DType dtype : {DType::f64, DType::f32}) {
    Step st = logit_step(dtype);
    auto kd = transfer::make_kd_loss("t", 2.0);
    kd->compute(st.inputs());
    auto s = stats_without_host_read(*kd, st.inputs());
    check_kd_example(s);
    CHECK(s.at("top1_agreement").dtype() == dtype);
    CHECK(kd->pictures(st.inputs()).empty());
  }
  // identical logits: full agreement; the teacher's confidence alone depends on T
  Tensor z = random_tensor({5, 7}, 3, -2, 2);
  auto same = transfer::logit_agreement(z, z, 4.0);
  CHECK(same.at("top1_agreement").item() == 1.0);
  CHECK(same.at("soft_agreement").item() == doctest::Approx(1.0).epsilon(1e-12));
  // a bf16 pair is summarised in f32
  auto bf = transfer::logit_agreement(z.to(DType::bf16), z.to(DType::bf16), 4.0);
  CHECK(bf.at("soft_agreement").dtype() == DType::f32);
  CHECK_THROWS_WITH_AS(transfer::logit_agreement(z, z.slice(1, 0, 3), 4.0), doctest::Contains("logit agreement"),
                       Error);
}

TEST_CASE("step stats: kd through the registry-facing factory keeps its temperature") {
  // At T = 1 the softened distributions differ from T = 2's: row 1 p_t = softmax([4, 0, 0]).
  Step st = logit_step(DType::f64);
  auto t1 = stats_without_host_read(*transfer::make_kd_loss("t", 1.0), st.inputs());
  auto direct = transfer::logit_agreement(st.student.at("logits"), st.teachers.at("t").at("logits"), 1.0);
  for (const auto& [name, v] : direct) CHECK_MESSAGE(t1.at(name).item() == v.item(), name);
  CHECK(t1.at("teacher_confidence").item() > 0.7);  // sharper than at T = 2 (0.623)
}

TEST_CASE("step stats: kd built by the loss registry from register_kd_loss") {
  // register_kd_loss() is what register_builtin_losses() calls for "kd" (registering again
  // replaces the entry with the same schema and factory).
  transfer::register_builtin_losses();
  transfer::register_kd_loss();
  auto kd = retort::test::build_term(retort::test::loss_recipe(R"({ name = "kd", teacher = "t", T = 2 })"), nullptr,
                                     {{"t", nullptr}});
  CHECK(kd->teachers() == std::vector<std::string>{"t"});
  Step st = logit_step(DType::f64);
  check_kd_example(stats_without_host_read(*kd, st.inputs()));
  check_close(kd->compute(st.inputs()),
              {transfer::kd_loss(st.student.at("logits"), st.teachers.at("t").at("logits"), 2.0).item()}, 1e-15);
  const LossSchema* schema = find_loss_schema("kd");
  REQUIRE(schema != nullptr);
  CHECK(schema->default_weight == transfer::kKdDefaultKdWeight);
}

TEST_CASE("step stats: dkd reports KD's agreement at its temperature") {
  Step st = logit_step(DType::f64);
  transfer::DkdOptions o;
  o.temperature = 2.0;
  transfer::DkdLoss dkd("t", o, transfer::LossWarmup{});
  dkd.compute(st.inputs());
  check_kd_example(stats_without_host_read(dkd, st.inputs()));
  CHECK(dkd.pictures(st.inputs()).empty());
}

TEST_CASE("step stats: fsp pair distances sum to the loss; pictures are the compared matrices") {
  // Student stem has 2 channels against the teacher's 3: a learned projection (1x1 conv + BN).
  const int64_t B = 3;
  const std::vector<TapInfo> s_taps{{"stem", {B, 2, 4, 4}}, {"stage1", {B, 3, 2, 2}}, {"stage2", {B, 4, 2, 2}}};
  const std::vector<TapInfo> t_taps{{"stem", {B, 3, 4, 4}}, {"stage1", {B, 3, 2, 2}}, {"stage2", {B, 4, 2, 2}}};
  for (auto reduction : {transfer::FspReduction::sum, transfer::FspReduction::mean}) {
    transfer::FspOptions o;
    o.reduction = reduction;
    transfer::FspLoss loss("t", s_taps, t_taps, o, Device::cpu(), 5);
    REQUIRE(loss.projection(0) != nullptr);
    loss.projection(0)->to(DType::f64);
    Step st;
    for (size_t k = 0; k < s_taps.size(); ++k) {
      st.student[s_taps[k].name] = random_tensor(s_taps[k].shape, 100 + k);
      st.teachers["t"][t_taps[k].name] = random_tensor(t_taps[k].shape, 200 + k);
    }
    loss.train(true);
    const double value = loss.compute(st.inputs()).item();
    // the projection's BatchNorm in training mode: step_stats (which recomputes nothing) leaves its
    // running statistics as compute() left them
    const auto before = buffer_copies(loss.buffers());
    auto stats = stats_without_host_read(loss, st.inputs());
    check_buffers_unchanged(loss.buffers(), before);
    REQUIRE(names_of(stats) == std::vector<std::string>{"pair0", "pair1"});
    CHECK(stats.at("pair0").item() + stats.at("pair1").item() == doctest::Approx(value).epsilon(1e-12));
    CHECK(stats.at("pair0").item() > 0);
    CHECK(stats.at("pair1").item() > 0);

    // pictures (eval mode, as at the end of a stage): the batch mean of each compared matrix
    loss.train(false);
    NoGradGuard no_grad;
    auto pics = loss.pictures(st.inputs());
    REQUIRE(names_of(pics) ==
            std::vector<std::string>{"student.pair0", "student.pair1", "teacher.pair0", "teacher.pair1"});
    CHECK(pics.at("teacher.pair0").shape() == Shape{3, 3});
    CHECK(pics.at("student.pair0").shape() == Shape{3, 3});
    CHECK(pics.at("teacher.pair1").shape() == Shape{3, 4});
    CHECK(pics.at("student.pair1").shape() == Shape{3, 4});
    auto tm = transfer::fsp_matrices({st.teachers["t"]["stem"], st.teachers["t"]["stage1"], st.teachers["t"]["stage2"]},
                                     transfer::PoolMode::average);
    auto sm = transfer::fsp_matrices({loss.projection(0)->forward(st.student["stem"]), st.student["stage1"],
                                      st.student["stage2"]},
                                     transfer::PoolMode::average);
    for (size_t k = 0; k < 2; ++k) {
      const std::string p = "pair" + std::to_string(k);
      check_close(pics.at("teacher." + p), mean(tm[k], {0}).to_vector(), 1e-12);
      check_close(pics.at("student." + p), mean(sm[k], {0}).to_vector(), 1e-12);
    }
    // eval mode: the pair distances of a compute() on the pictures' batch
    loss.compute(st.inputs());
    auto eval_stats = loss.step_stats(st.inputs());
    auto terms = transfer::fsp_pair_losses(sm, tm, reduction);
    CHECK(eval_stats.at("pair0").item() == doctest::Approx(terms[0].item()).epsilon(1e-12));
  }
}

TEST_CASE("step stats: fsp pictures show the teacher's matrices as shuffled for the loss") {
  const std::vector<TapInfo> taps{{"stem", {2, 3, 2, 2}}, {"stage1", {2, 2, 2, 2}}};
  transfer::FspOptions o;
  o.shuffle = true;
  o.shuffle_seed = 4;
  transfer::FspLoss loss("t", taps, taps, o, Device::cpu(), 0);
  Step st;
  for (size_t k = 0; k < taps.size(); ++k) {
    st.student[taps[k].name] = random_tensor(taps[k].shape, 300 + k);
    st.teachers["t"][taps[k].name] = random_tensor(taps[k].shape, 310 + k);
  }
  const double value = loss.compute(st.inputs()).item();
  auto stats = stats_without_host_read(loss, st.inputs());
  CHECK(stats.at("pair0").item() == doctest::Approx(value).epsilon(1e-12));
  NoGradGuard no_grad;
  auto pics = loss.pictures(st.inputs());
  auto shuffled = loss.teacher_matrices({st.teachers["t"]["stem"], st.teachers["t"]["stage1"]});
  check_close(pics.at("teacher.pair0"), mean(shuffled[0], {0}).to_vector(), 1e-12);
}

TEST_CASE("step stats: at stage distances sum to the loss; pictures are the attention maps") {
  // stage 1: equal sizes, channels 2 vs 3; stage 2: the student's 4x4 pooled to the teacher's 2x2
  const int64_t B = 3;
  transfer::AtLoss loss("t", {TapInfo{"stage1", {B, 2, 4, 4}}, TapInfo{"stage2", {B, 2, 4, 4}}},
                        {TapInfo{"stage1", {B, 3, 4, 4}}, TapInfo{"stage2", {B, 5, 2, 2}}}, 2.0);
  Step st;
  st.student["stage1"] = random_tensor({B, 2, 4, 4}, 400);
  st.student["stage2"] = random_tensor({B, 2, 4, 4}, 401);
  st.teachers["t"]["stage1"] = random_tensor({B, 3, 4, 4}, 402);
  st.teachers["t"]["stage2"] = random_tensor({B, 5, 2, 2}, 403);
  const double value = loss.compute(st.inputs()).item();
  auto stats = stats_without_host_read(loss, st.inputs());
  REQUIRE(names_of(stats) == std::vector<std::string>{"pair0", "pair1"});
  CHECK(stats.at("pair0").item() + stats.at("pair1").item() == doctest::Approx(value).epsilon(1e-12));
  check_close(stats.at("pair1"),
              {transfer::at_stage_loss(st.student["stage2"], st.teachers["t"]["stage2"], 2.0).item()}, 1e-14);

  NoGradGuard no_grad;
  auto pics = loss.pictures(st.inputs());
  REQUIRE(names_of(pics) ==
          std::vector<std::string>{"student.pair0", "student.pair1", "teacher.pair0", "teacher.pair1"});
  CHECK(pics.at("student.pair0").shape() == Shape{B, 4, 4});
  CHECK(pics.at("teacher.pair0").shape() == Shape{B, 4, 4});
  CHECK(pics.at("student.pair1").shape() == Shape{B, 2, 2});
  CHECK(pics.at("teacher.pair1").shape() == Shape{B, 2, 2});
  using transfer::attention_map;
  using transfer::PoolMode;
  check_close(pics.at("student.pair0"), attention_map(st.student["stage1"]).to_vector(), 1e-14);
  check_close(pics.at("teacher.pair0"), attention_map(st.teachers["t"]["stage1"]).to_vector(), 1e-14);
  check_close(pics.at("student.pair1"),
              attention_map(transfer::pool_to(st.student["stage2"], 2, 2, PoolMode::average)).to_vector(), 1e-14);
  check_close(pics.at("teacher.pair1"), attention_map(st.teachers["t"]["stage2"]).to_vector(), 1e-14);
  // each image's map is L2-normalised, as the loss uses it
  Tensor norms = sum(mul(pics.at("teacher.pair1"), pics.at("teacher.pair1")), {1, 2});
  check_close(norms, {1.0, 1.0, 1.0}, 1e-12);
}

TEST_CASE("step stats: aft rho statistics equal epoch_stats; the picture is rho") {
  transfer::AftOptions o;
  transfer::AftLoss loss({"a", "b"}, 3, 7, o, 0, Device::cpu(), DType::f64);
  loss.s.detach().copy_(random_tensor({7}, 500, -3, 3));
  Step st;
  st.student["pooled"] = random_tensor({4, 3}, 501);
  st.teachers["a"]["pooled"] = random_tensor({4, 3}, 502);
  st.teachers["b"]["pooled"] = random_tensor({4, 4}, 503);
  loss.compute(st.inputs());
  auto stats = stats_without_host_read(loss, st.inputs());
  REQUIRE(names_of(stats) == std::vector<std::string>{"rho_max", "rho_mean", "rho_min"});
  const auto epoch = loss.epoch_stats();
  for (const auto& [name, v] : stats) CHECK_MESSAGE(v.item() == doctest::Approx(epoch.at(name)).epsilon(1e-12), name);
  // by hand from rho = sigmoid(s)
  std::vector<double> rho;
  for (double s : loss.s.to_vector()) rho.push_back(1.0 / (1.0 + std::exp(-s)));
  double lo = rho[0], hi = rho[0], total = 0, total2 = 0;
  for (double r : rho) lo = std::min(lo, r), hi = std::max(hi, r), total += r, total2 += r * r;
  const double m = total / double(rho.size());
  CHECK(stats.at("rho_min").item() == doctest::Approx(lo).epsilon(1e-12));
  CHECK(stats.at("rho_max").item() == doctest::Approx(hi).epsilon(1e-12));
  CHECK(stats.at("rho_mean").item() == doctest::Approx(m).epsilon(1e-12));
  CHECK(epoch.at("rho_std") == doctest::Approx(std::sqrt(total2 / double(rho.size()) - m * m)).epsilon(1e-9));

  NoGradGuard no_grad;
  auto pics = loss.pictures(st.inputs());
  REQUIRE(names_of(pics) == std::vector<std::string>{"rho"});
  CHECK(pics.at("rho").shape() == Shape{7});
  check_close(pics.at("rho"), rho, 1e-14);

  // no learned rho: nothing to follow or draw
  transfer::AftOptions fixed;
  fixed.learn_rho = false;
  transfer::AftLoss still({"a"}, 3, 3, fixed, 0, Device::cpu(), DType::f64);
  CHECK(still.step_stats(st.inputs()).empty());
  CHECK(still.pictures(st.inputs()).empty());
  CHECK(still.epoch_stats().empty());
  transfer::AftOptions dense;
  dense.variant = transfer::AftVariant::dense;
  CHECK(transfer::AftLoss({"a"}, 3, 3, dense, 0, Device::cpu(), DType::f64).step_stats(st.inputs()).empty());
}

TEST_CASE("step stats: align_uniform's alignment and uniformity add up to the loss") {
  transfer::AlignUniformLoss loss("t", 4, 6, 3, 2.0, 9, Device::cpu(), DType::f64);
  Step st;
  st.student["pooled"] = random_tensor({5, 4}, 600);
  st.teachers["t"]["pooled"] = random_tensor({5, 6}, 601);
  const double value = loss.compute(st.inputs()).item();
  auto stats = stats_without_host_read(loss, st.inputs());
  REQUIRE(names_of(stats) == std::vector<std::string>{"alignment", "uniformity"});
  // L_AU = 1 * alignment + 1 * uniformity
  CHECK(stats.at("alignment").item() + stats.at("uniformity").item() == doctest::Approx(value).epsilon(1e-12));
  NoGradGuard no_grad;
  Tensor zs = loss.student_head->forward(st.student["pooled"]), zt = loss.teacher_head->forward(st.teachers["t"]["pooled"]);
  check_close(stats.at("alignment"), {transfer::alignment_loss(zs, zt).item()}, 1e-14);
  const double unif = (transfer::uniformity_loss(zs, 2.0).item() + transfer::uniformity_loss(zt, 2.0).item()) / 2;
  check_close(stats.at("uniformity"), {unif}, 1e-14);
  CHECK(stats.at("alignment").item() > 0);
  CHECK(stats.at("uniformity").item() < 0);
}

TEST_CASE("step stats: fitnet's hint is the loss, and the regressor's BatchNorm keeps its statistics") {
  // ConvReg from a 4x4 student map to the teacher's 2x2 (3x3 stride-2 conv + BN + ReLU)
  transfer::FitNetLoss loss("t", TapInfo{"stage1", {3, 3, 4, 4}}, TapInfo{"stage2", {3, 2, 2, 2}}, Device::cpu(), 7);
  loss.regressor().to(DType::f64);
  REQUIRE_FALSE(loss.buffers().empty());
  Step st;
  st.student["stage1"] = random_tensor({3, 3, 4, 4}, 700);
  st.teachers["t"]["stage2"] = random_tensor({3, 2, 2, 2}, 701, 0, 1);
  loss.train(true);
  const double value = loss.compute(st.inputs()).item();
  const auto before = buffer_copies(loss.buffers());
  auto stats = stats_without_host_read(loss, st.inputs());
  check_buffers_unchanged(loss.buffers(), before);
  REQUIRE(names_of(stats) == std::vector<std::string>{"hint"});
  CHECK(stats.at("hint").item() == doctest::Approx(value).epsilon(1e-12));
  CHECK(stats.at("hint").item() > 0);
  // the next training step still updates them (running mean, var and the batch count)
  loss.compute(st.inputs());
  for (size_t i = 0; i < before.size(); ++i)
    CHECK_FALSE_MESSAGE(retort::test::same_bits(loss.buffers()[i].second, before[i]), loss.buffers()[i].first);
  // eval mode: the running statistics, as compute() uses them
  loss.train(false);
  const double eval_value = loss.compute(st.inputs()).item();
  CHECK(stats_without_host_read(loss, st.inputs()).at("hint").item() == doctest::Approx(eval_value).epsilon(1e-12));
  CHECK(loss.pictures(st.inputs()).empty());
}
