// Progress line: formatting, TTY redraws and plain-line fallback.
#include "train/progress.h"

#include <algorithm>
#include <unistd.h>
#include <fmt/format.h>

namespace retort {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_progress(const ProgressState& st, int bar_width) {
  const int64_t batches = std::max<int64_t>(st.batches, 1);
  const double fraction = std::clamp(double(st.batch) / double(batches), 0.0, 1.0);
  const int filled = static_cast<int>(fraction * bar_width);
  std::string line = fmt::format("{}  epoch {}/{}  [{}{}]  {}/{}", st.label, st.epoch, st.epochs,
                                 std::string(size_t(filled), '#'), std::string(size_t(bar_width - filled), '-'),
                                 st.batch, st.batches);
  if (!std::isnan(st.loss)) line += fmt::format("  loss {:.4f}", st.loss);
  if (!std::isnan(st.accuracy)) line += fmt::format("  acc {:.2f}%", st.accuracy);
  if (!std::isnan(st.images_per_s)) line += fmt::format("  {:.0f} img/s", st.images_per_s);
  line += "  ETA " + format_duration(st.eta_s);
  return line;
}

Progress::Progress(std::string label, int64_t epochs, int64_t batches_per_epoch, std::FILE* out,
                   ProgressOptions options)
    : out_(out), options_(options), created_(std::chrono::steady_clock::now()) {
  tty_ = options_.tty < 0 ? (out_ && ::isatty(::fileno(out_))) : options_.tty == 1;
  options_.plain_every_percent = std::clamp(options_.plain_every_percent, 1, 100);
  state_.label = std::move(label);
  state_.epochs = std::max<int64_t>(epochs, 1);
  state_.batches = std::max<int64_t>(batches_per_epoch, 1);
}

Progress::~Progress() {
  if (line_open_ && out_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

double Progress::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count();
}

void Progress::start_epoch(int64_t epoch) { start_epoch_at(now_s(), epoch); }

void Progress::start_epoch_at(double now, int64_t epoch) {
  if (line_open_) end_epoch();
  state_.epoch = epoch;
  state_.batch = 0;
  state_.loss = state_.accuracy = state_.images_per_s = NAN;
  epoch_images_ = 0;
  next_plain_percent_ = options_.plain_every_percent;
  last_now_s_ = std::max(now, last_now_s_);
  epoch_start_s_ = last_batch_end_s_ = last_now_s_;
}

void Progress::update(int64_t batch, double loss, double accuracy, int64_t images) {
  update_at(now_s(), batch, loss, accuracy, images);
}

void Progress::update_at(double now, int64_t batch, double loss, double accuracy, int64_t images) {
  if (now < last_now_s_) now = last_now_s_;  // clocks only move forward
  last_now_s_ = now;
  const int64_t done_now = std::max<int64_t>(batch - state_.batch, 0);
  stage_batch_time_s_ += std::max(now - last_batch_end_s_, 0.0);
  last_batch_end_s_ = now;
  batches_done_in_stage_ += done_now;
  // The rate counts from the end of the epoch's first update: before it the clock may have
  // started late (a bar made at the first report), and one batch says nothing reliable.
  if (epoch_images_ == 0) {
    first_update_s_ = now;
    images_at_first_update_ = images;
  }
  epoch_images_ += images;
  state_.batch = batch;
  state_.loss = loss;
  state_.accuracy = accuracy;
  const double since_first = now - first_update_s_;
  state_.images_per_s =
      since_first > 0 ? double(epoch_images_ - images_at_first_update_) / since_first : NAN;
  const int64_t remaining = (state_.epochs - state_.epoch) * state_.batches + (state_.batches - batch);
  state_.eta_s = batches_done_in_stage_ > 0 && stage_batch_time_s_ > 0
                     ? stage_batch_time_s_ / double(batches_done_in_stage_) * double(std::max<int64_t>(remaining, 0))
                     : NAN;
  draw(batch >= state_.batches);
}

void Progress::draw(bool force) {
  if (!out_) return;
  if (tty_) {
    if (!force && last_now_s_ - last_draw_s_ < options_.min_redraw_s) return;
    last_draw_s_ = last_now_s_;
    std::fprintf(out_, "\r%s\x1b[K", format_progress(state_, options_.bar_width).c_str());
    line_open_ = true;
    std::fflush(out_);
    return;
  }
  const int64_t percent = state_.batch * 100 / state_.batches;
  if (percent < next_plain_percent_ && !(force && next_plain_percent_ <= 100)) return;
  while (next_plain_percent_ <= percent) next_plain_percent_ += options_.plain_every_percent;
  if (force) next_plain_percent_ = 101;  // the 100% line is printed once
  std::fprintf(out_, "%s\n", format_progress(state_, options_.bar_width).c_str());
  std::fflush(out_);
}

void Progress::end_epoch() {
  if (!out_) return;
  if (tty_ && line_open_) {
    std::fprintf(out_, "\r%s\x1b[K\n", format_progress(state_, options_.bar_width).c_str());
    std::fflush(out_);
  }
  line_open_ = false;
}

void Progress::message(const std::string& text) {
  if (!out_) return;
  if (tty_ && line_open_) {
    std::fprintf(out_, "\r\x1b[K%s\n%s", text.c_str(), format_progress(state_, options_.bar_width).c_str());
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

}  // namespace retort
