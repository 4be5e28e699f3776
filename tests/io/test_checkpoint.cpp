// Checkpoints: a round trip restores progress, RNG and optimizer state bit-exactly (training
// resumes on the same bits); loading reports every missing/unexpected/mismatched name and
// changes nothing; a failing save keeps the previous checkpoint.
#include <cstring>
#include <memory>
#include "engine/io/checkpoint.h"
#include "engine/optim/adamw.h"
#include "engine/optim/sgd.h"
#include "helpers.h"
#include "io/temp_dir.h"

using namespace retort;
using retort::test::random_tensor;
using retort::test::same_bits;
using retort::test::read_bytes;
using retort::test::TempDir;

namespace {
// A tiny "model": two parameters and two buffers, all named.
struct TinyModel {
  Tensor weight, bias, running_mean, counter;
  explicit TinyModel(uint64_t seed) {
    weight = random_tensor({3, 4}, seed, -1, 1, DType::f32);
    bias = random_tensor({4}, seed + 1, -1, 1, DType::f32);
    running_mean = random_tensor({4}, seed + 2, -1, 1, DType::f32);
    counter = Tensor::from_i64({int64_t(seed)}, {1});
    weight.requires_grad_(true);
    bias.requires_grad_(true);
  }
  NamedTensors named() const {
    return {{"fc.weight", weight}, {"fc.bias", bias}, {"bn.running_mean", running_mean}, {"bn.num_batches", counter}};
  }
};

Tensor draw(Generator& gen, const Shape& shape) {
  std::vector<double> v(size_t(shape_numel(shape)));
  for (auto& x : v) x = gen.normal();
  return Tensor::from_vector(v, shape);
}

// One training step whose gradients depend on the parameters and on the generator's draws,
// so a wrong parameter, optimizer or RNG restore changes the bits that follow.
void train_step(TinyModel& m, Optimizer& opt, Generator& gen) {
  Tensor rw = draw(gen, {3, 4}), rb = draw(gen, {4});
  add(sum(mul(mul(m.weight, m.weight), rw)), sum(mul(m.bias, rb))).backward();
  opt.step();
  opt.zero_grad();
  NoGradGuard no_grad;
  m.running_mean.copy_(add(mul(m.running_mean, 0.9), mul(rb, 0.1)));
  m.counter.copy_(Tensor::from_i64({m.counter.to_i64_vector()[0] + 1}, {1}));
}

std::unique_ptr<Optimizer> make_optimizer(bool adamw, TinyModel& m) {
  auto groups = make_param_groups({{"fc.weight", m.weight}, {"fc.bias", m.bias}}, 0.05, 0.01);
  if (adamw) return std::make_unique<AdamW>(std::move(groups));
  return std::make_unique<SGD>(std::move(groups), SgdOptions{0.9, true});
}

}  // namespace

TEST_CASE("checkpoint: round trip restores progress, RNG and optimizer state bit-exactly") {
  for (bool adamw : {false, true}) {
    INFO(std::string(adamw ? "AdamW" : "SGD"));
    TempDir dir("ckpt_roundtrip");
    std::string path = dir.file("ckpt.safetensors");

    // Reference run: 5 steps without interruption.
    TinyModel ref(7);
    auto ref_opt = make_optimizer(adamw, ref);
    Generator ref_gen(1234);
    for (int s = 0; s < 5; ++s) {
      if (s == 3) ref_opt->set_lr(0, 0.1 * 0.3);  // the same lr change as the interrupted run below
      train_step(ref, *ref_opt, ref_gen);
    }

    // Interrupted run: 3 steps, save, then a fresh model/optimizer/generator loads and does 2 more.
    TinyModel a(7);
    auto a_opt = make_optimizer(adamw, a);
    Generator a_gen(1234);
    for (int s = 0; s < 3; ++s) train_step(a, *a_opt, a_gen);
    a_opt->set_lr(0, 0.1 * 0.3);  // a non-representable lr must come back with the same bits
    TrainingProgress saved;
    saved.step = 3;
    saved.epoch = 1;
    saved.batch_in_epoch = 7;
    saved.capture_rng(a_gen);
    saved.stage = "kd-stage";
    saved.extra = {{"teacher", "resnet56"}, {"note", "a=b; c"}};
    save_checkpoint(path, a.named(), a_opt.get(), saved);

    TinyModel b(99);  // different initial values
    auto b_opt = make_optimizer(adamw, b);
    Generator b_gen(5);
    TrainingProgress got = load_checkpoint(path, b.named(), b_opt.get());
    CHECK(got.step == 3);
    CHECK(got.epoch == 1);
    CHECK(got.batch_in_epoch == 7);
    CHECK(got.rng_seed == 1234);
    CHECK(got.rng_offset == a_gen.offset());
    CHECK(got.stage == "kd-stage");
    CHECK(got.extra == saved.extra);
    got.restore_rng(b_gen);
    CHECK(b_gen.seed() == a_gen.seed());
    CHECK(b_gen.offset() == a_gen.offset());
    CHECK(b_opt->lr(0) == a_opt->lr(0));  // bit-exact double
    for (size_t i = 0; i < a.named().size(); ++i) CHECK(same_bits(a.named()[i].second, b.named()[i].second));
    OptimizerState sa = a_opt->export_state(), sb = b_opt->export_state();
    CHECK(sa.scalars == sb.scalars);
    REQUIRE(sa.tensors.size() == sb.tensors.size());
    CHECK_FALSE(sa.tensors.empty());
    for (size_t i = 0; i < sa.tensors.size(); ++i) {
      CHECK(sa.tensors[i].first == sb.tensors[i].first);
      CHECK(same_bits(sa.tensors[i].second, sb.tensors[i].second));
    }

    for (int s = 3; s < 5; ++s) train_step(b, *b_opt, b_gen);
    for (size_t i = 0; i < ref.named().size(); ++i) {
      INFO(ref.named()[i].first);
      CHECK(same_bits(ref.named()[i].second, b.named()[i].second));
    }
    CHECK(read_checkpoint_progress(path).step == 3);
  }
}

TEST_CASE("checkpoint: load reports every missing, unexpected and mismatched name and changes nothing") {
  TempDir dir("ckpt_mismatch");
  std::string path = dir.file("ckpt.safetensors");
  TinyModel a(1);
  save_checkpoint(path, a.named(), nullptr, TrainingProgress{});

  TinyModel b(2);
  Tensor wrong = Tensor::zeros({5});
  Tensor extra = Tensor::zeros({2});
  // live: fc.weight ok, fc.bias with a wrong shape, bn.running_mean missing from live (unexpected in file),
  // head.weight live but not in the file (missing)
  NamedTensors live = {{"fc.weight", b.weight}, {"fc.bias", wrong}, {"bn.num_batches", b.counter}, {"head.weight", extra}};
  Tensor weight_before = b.weight.clone();
  try {
    load_checkpoint(path, live, nullptr);
    FAIL("load accepted a checkpoint that does not fit");
  } catch (const Error& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("3 problems") != std::string::npos);
    CHECK(msg.find("missing 'model.head.weight'") != std::string::npos);
    CHECK(msg.find("unexpected 'model.bn.running_mean'") != std::string::npos);
    CHECK(msg.find("mismatched 'model.fc.bias': saved [4] but live [5]") != std::string::npos);
  }
  CHECK(same_bits(b.weight, weight_before));  // nothing was loaded

  // asking for optimizer state from a checkpoint without any
  auto opt = make_optimizer(false, b);
  CHECK_THROWS_WITH_AS(load_checkpoint(path, b.named(), opt.get()), doctest::Contains("holds no optimizer state"), Error);
  // a checkpoint of another optimizer
  auto adam = make_optimizer(true, a);
  save_checkpoint(path, a.named(), adam.get(), TrainingProgress{});
  CHECK_THROWS_WITH_AS(load_checkpoint(path, b.named(), opt.get()), doctest::Contains("holds AdamW state, not SGD"), Error);
  // a plain safetensors file is not a checkpoint
  write_safetensors(dir.file("plain.safetensors"), {{"x", Tensor::ones({1})}});
  CHECK_THROWS_WITH_AS(load_checkpoint(dir.file("plain.safetensors"), b.named(), nullptr),
                       doctest::Contains("not a retort checkpoint"), Error);
}

TEST_CASE("checkpoint: a failing save keeps the previous checkpoint") {
  TempDir dir("ckpt_atomic");
  std::string path = dir.file("ckpt.safetensors");
  TinyModel a(3);
  TrainingProgress p;
  p.step = 10;
  save_checkpoint(path, a.named(), nullptr, p);
  std::string before = read_bytes(path);
  NamedTensors broken = a.named();
  broken.emplace_back("head.weight", Tensor());
  p.step = 11;
  CHECK_THROWS_WITH_AS(save_checkpoint(path, broken, nullptr, p), doctest::Contains("'head.weight' is undefined"), Error);
  testing::fail_next_safetensors_write_after(64);
  CHECK_THROWS_AS(save_checkpoint(path, a.named(), nullptr, p), Error);
  CHECK(read_bytes(path) == before);
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});
  CHECK(read_checkpoint_progress(path).step == 10);
}
