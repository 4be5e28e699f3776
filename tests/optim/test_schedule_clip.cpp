// LR schedules at given steps (hand values), warm-up composition, applying to groups;
// gradient clipping to a max norm.
#include <cmath>
#include <numbers>
#include "engine/optim/clip.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "helpers.h"

using namespace retort;
using retort::test::check_close;

namespace {
bool near(double a, double b) { return std::abs(a - b) <= 1e-12 * (1 + std::abs(b)); }
}  // namespace

TEST_CASE("LR schedules: hand values") {
  auto c = LrSchedule::constant(0.1);
  CHECK(c.lr_at(0) == 0.1);
  CHECK(c.lr_at(100000) == 0.1);

  // milestones at steps 3 and 6, gamma 0.1: 0.1 for steps 0-2, 0.01 for 3-5, 0.001 from 6 on
  auto m = LrSchedule::multistep(0.1, {3, 6}, 0.1);
  CHECK(near(m.lr_at(0), 0.1));
  CHECK(near(m.lr_at(2), 0.1));
  CHECK(near(m.lr_at(3), 0.01));
  CHECK(near(m.lr_at(5), 0.01));
  CHECK(near(m.lr_at(6), 0.001));
  CHECK(near(m.lr_at(1000), 0.001));

  // milestone at epoch 2 with 5 steps per epoch = step 10, gamma 0.5
  auto me = LrSchedule::multistep_epochs(0.1, {2}, 5, 0.5);
  CHECK(near(me.lr_at(9), 0.1));
  CHECK(near(me.lr_at(10), 0.05));

  // cosine from 1 to 0 over 10 steps: 0.5 (1 + cos(pi t / 10))
  auto cos0 = LrSchedule::cosine(1.0, 10);
  CHECK(near(cos0.lr_at(0), 1.0));
  CHECK(near(cos0.lr_at(2), 0.9045084971874737));  // 0.5 (1 + cos(0.2 pi)) = 0.5 (1 + 0.80901699)
  CHECK(near(cos0.lr_at(5), 0.5));
  CHECK(near(cos0.lr_at(10), 0.0));
  CHECK(near(cos0.lr_at(25), 0.0));  // stays at the minimum after the end
  // cosine from 1 to 0.2: 0.2 + 0.8 * 0.5 = 0.6 half-way
  auto cos_min = LrSchedule::cosine(1.0, 10, 0.2);
  CHECK(near(cos_min.lr_at(5), 0.6));
  CHECK(near(cos_min.lr_at(10), 0.2));

  // warm-up over 4 steps from 0.25: factor 0.25 + 0.75 t / 4 -> 0.25, 0.4375, 0.625, 0.8125, then 1
  auto w = LrSchedule::constant(0.1).with_warmup(4, 0.25);
  CHECK(near(w.lr_at(0), 0.025));
  CHECK(near(w.lr_at(1), 0.04375));
  CHECK(near(w.lr_at(2), 0.0625));
  CHECK(near(w.lr_at(3), 0.08125));
  CHECK(near(w.lr_at(4), 0.1));
  // warm-up composed with cosine: step 1 = (0 + 1/2) * 0.5 (1 + cos(0.1 pi)) = 0.5 * 0.97552825814 = 0.48776412907
  auto wc = LrSchedule::cosine(1.0, 10).with_warmup(2, 0.0);
  CHECK(near(wc.lr_at(0), 0.0));
  CHECK(near(wc.lr_at(1), 0.4877641290737884));
  CHECK(near(wc.lr_at(2), cos0.lr_at(2)));
  // warm-up composed with multi-step
  auto wm = m.with_warmup(2, 0.5);
  CHECK(near(wm.lr_at(1), 0.075));  // 0.1 * (0.5 + 0.5 * 1/2)
  CHECK(near(wm.lr_at(4), 0.01));

  // pure: the same step gives the same lr whatever was asked before, from any copy
  auto copy = wc;
  double first = wc.lr_at(7);
  for (int s = 0; s < 20; ++s) wc.lr_at(s);
  CHECK(wc.lr_at(7) == first);
  CHECK(copy.lr_at(7) == first);

  CHECK_THROWS_WITH_AS(LrSchedule::multistep(0.1, {5, 3}, 0.1), doctest::Contains("increasing"), Error);
  CHECK_THROWS_WITH_AS(LrSchedule::cosine(0.1, 0), doctest::Contains("total_steps must be positive"), Error);
  CHECK_THROWS_WITH_AS(c.lr_at(-1), doctest::Contains("non-negative"), Error);
}

TEST_CASE("LR schedules: apply scales every group from its initial lr") {
  Tensor a = Tensor::ones({2}), b = Tensor::ones({2});
  ParamGroup g0, g1;
  g0.params = {a};
  g0.lr = 0.1;
  g1.params = {b};
  g1.lr = 0.01;
  SGD opt({g0, g1});
  auto s = LrSchedule::multistep(0.1, {3}, 0.1);
  s.apply(opt, 5);
  CHECK(near(opt.lr(0), 0.01));
  CHECK(near(opt.lr(1), 0.001));
  s.apply(opt, 0);  // back at the start: the initial lrs again (pure in the step)
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(1) == 0.01);
}

TEST_CASE("clip_grad_norm: scales to the max norm and returns the total norm") {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1}), none = Tensor::zeros({3});
  auto set = [&] {
    a.set_grad(Tensor::from_vector({3, 4}, {2}));
    b.set_grad(Tensor::from_vector({12}, {1}));
  };
  set();
  // total norm = sqrt(9 + 16 + 144) = 13; below the max nothing changes
  CHECK(near(clip_grad_norm({a, b, none}, 20.0), 13.0));
  check_close(a.grad(), {3, 4});
  check_close(b.grad(), {12});
  // max 6.5: scale 6.5 / (13 + 1e-6) -> [1.5, 2] and [6]
  double scale = 6.5 / (13.0 + 1e-6);
  CHECK(near(clip_grad_norm({a, b, none}, 6.5), 13.0));
  check_close(a.grad(), {3 * scale, 4 * scale}, 1e-7);
  check_close(b.grad(), {12 * scale}, 1e-7);
  double after = std::sqrt(std::pow(a.grad().to_vector()[0], 2) + std::pow(a.grad().to_vector()[1], 2) +
                           std::pow(b.grad().to_vector()[0], 2));
  CHECK(std::abs(after - 6.5) < 1e-5);
  // a broadcast (stride-0) gradient is replaced rather than written through
  Tensor c = Tensor::zeros({3});
  c.set_grad(Tensor::from_vector({2}, {1}).expand({3}));  // norm sqrt(12)
  CHECK(near(clip_grad_norm({c}, 1.0), std::sqrt(12.0)));
  double s2 = 1.0 / (std::sqrt(12.0) + 1e-6);
  check_close(c.grad(), {2 * s2, 2 * s2, 2 * s2}, 1e-7);
  CHECK(clip_grad_norm({none}, 1.0) == 0.0);
}
