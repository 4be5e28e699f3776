// Progress line: the formatted text, TTY redraws with '\r', plain lines every N percent.
#include <doctest/doctest.h>
#include <cstdio>
#include <string>
#include "train/progress.h"

using namespace retort;

namespace {
// Everything written to a temporary FILE*.
std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return out;
}
}  // namespace

TEST_CASE("progress: the line shows stage, epoch, batch, bar, loss, accuracy, speed and ETA") {
  ProgressState st;
  st.label = "distill/student";
  st.epoch = 3, st.epochs = 30, st.batch = 120, st.batches = 480;
  st.loss = 0.43214, st.accuracy = 87.1, st.images_per_s = 5231.4, st.eta_s = 754;
  CHECK(format_progress(st, 8) ==
        "distill/student  epoch 3/30  [##------]  120/480  loss 0.4321  acc 87.10%  5231 img/s  ETA 12:34");
  st.accuracy = NAN, st.images_per_s = NAN, st.eta_s = NAN;
  CHECK(format_progress(st, 4) == "distill/student  epoch 3/30  [#---]  120/480  loss 0.4321  ETA ?");
  CHECK(format_duration(7) == "0:07");
  CHECK(format_duration(3723) == "1:02:03");
  CHECK(format_duration(-1) == "?");
}

TEST_CASE("progress: plain lines every N percent when not a TTY") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    Progress p("fit/m", 2, 10, f, ProgressOptions{0, 25, 10, 0.1});
    CHECK_FALSE(p.tty());
    p.start_epoch_at(0.0, 1);
    for (int b = 1; b <= 10; ++b) p.update_at(0.5 * b, b, 1.0 / b, 50.0, 32);
    p.end_epoch();
    // 32 images every 0.5 s; 10 batches left after the first epoch at 0.5 s each.
    CHECK(p.state().images_per_s == doctest::Approx(64.0));
    CHECK(p.state().eta_s == doctest::Approx(5.0));
  }
  const std::string out = contents(f);
  std::fclose(f);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out ==
        "fit/m  epoch 1/2  [###-------]  3/10  loss 0.3333  acc 50.00%  64 img/s  ETA 0:09\n"
        "fit/m  epoch 1/2  [#####-----]  5/10  loss 0.2000  acc 50.00%  64 img/s  ETA 0:08\n"
        "fit/m  epoch 1/2  [########--]  8/10  loss 0.1250  acc 50.00%  64 img/s  ETA 0:06\n"
        "fit/m  epoch 1/2  [##########]  10/10  loss 0.1000  acc 50.00%  64 img/s  ETA 0:05\n");
}

TEST_CASE("progress: a TTY redraws in place with a carriage return, throttled") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    Progress p("fit/m", 1, 4, f, ProgressOptions{1, 20, 4, 1.0});
    CHECK(p.tty());
    p.start_epoch_at(0.0, 1);
    p.update_at(1.0, 1, 2.0, NAN, 10);    // drawn
    p.update_at(1.5, 2, 1.5, NAN, 10);    // within 1 s of the last drawing: skipped
    p.message("eval: top1 50.0%");        // its own line, then the bar again
    p.update_at(2.5, 3, 1.0, NAN, 10);    // drawn
    p.update_at(2.6, 4, 0.5, NAN, 10);    // the last batch is always drawn
    p.end_epoch();
  }
  const std::string out = contents(f);
  std::fclose(f);
  // The first frame shows no rate (one batch, and a clock that may have started late); then the
  // images after the first batch over the time since it: 10 / 0.5 s, 20 / 1.5 s, 30 / 1.6 s.
  CHECK(out ==
        "\r" "fit/m  epoch 1/1  [#---]  1/4  loss 2.0000  ETA 0:03\x1b[K"
        "\r\x1b[K" "eval: top1 50.0%\n" "fit/m  epoch 1/1  [##--]  2/4  loss 1.5000  20 img/s  ETA 0:02"
        "\r" "fit/m  epoch 1/1  [###-]  3/4  loss 1.0000  13 img/s  ETA 0:01\x1b[K"
        "\r" "fit/m  epoch 1/1  [####]  4/4  loss 0.5000  19 img/s  ETA 0:00\x1b[K"
        "\r" "fit/m  epoch 1/1  [####]  4/4  loss 0.5000  19 img/s  ETA 0:00\x1b[K\n");
}
