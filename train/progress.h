// The terminal progress line of a training stage:
//   distill/student  epoch 3/30  [#########---------------]  120/469  loss 0.4321  acc 87.10%  5231 img/s  ETA 12:34
// On a TTY it redraws in place with '\r' (at most every 0.1 s); otherwise (CI logs) it
// prints a plain line each time the epoch passes another N percent.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace retort {

struct ProgressState {
  std::string label;  // "stage/model"
  int64_t epoch = 1, epochs = 1;
  int64_t batch = 0, batches = 1;
  double loss = NAN;        // running mean over the epoch
  double accuracy = NAN;    // percent; NaN when not measured
  double images_per_s = NAN;
  double eta_s = NAN;       // to the end of the stage
};

// The line for `state` (no '\r', no newline). Pure, for tests and custom front-ends.
std::string format_progress(const ProgressState& state, int bar_width = 24);
// "0:07", "12:34", "1:02:03"; "?" for NaN or negative.
std::string format_duration(double seconds);

struct ProgressOptions {
  int tty = -1;                  // 1 redraw in place, 0 plain lines, -1 detect with isatty
  int plain_every_percent = 20;  // plain mode: a line each time the epoch passes this step
  int bar_width = 24;
  double min_redraw_s = 0.1;     // TTY mode: redraw throttle
};

class Progress {
 public:
  Progress(std::string label, int64_t epochs, int64_t batches_per_epoch, std::FILE* out = stderr,
           ProgressOptions options = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void start_epoch(int64_t epoch);  // 1-based
  // After batch `batch` (1-based) of the current epoch, with the epoch's running loss and
  // accuracy (percent, NaN if unknown) and the number of images in this batch.
  void update(int64_t batch, double loss, double accuracy, int64_t images);
  // The same with an explicit clock (seconds since the Progress was made), for tests.
  void start_epoch_at(double now_s, int64_t epoch);
  void update_at(double now_s, int64_t batch, double loss, double accuracy, int64_t images);
  // Ends the epoch's line (TTY: keeps the last drawing and moves to a new line).
  void end_epoch();
  // Prints a line of its own (an evaluation result) without garbling the bar.
  void message(const std::string& text);

  bool tty() const { return tty_; }
  const ProgressState& state() const { return state_; }

 private:
  double now_s() const;
  void draw(bool force);

  std::FILE* out_;
  ProgressOptions options_;
  bool tty_ = false;
  ProgressState state_;
  std::chrono::steady_clock::time_point created_;
  double epoch_start_s_ = 0, last_draw_s_ = -1e9, last_now_s_ = 0, first_update_s_ = 0;
  int64_t images_at_first_update_ = 0;
  int64_t epoch_images_ = 0, batches_done_in_stage_ = 0, next_plain_percent_ = 0;
  double stage_batch_time_s_ = 0;  // time spent in batches (not evaluation) this stage
  double last_batch_end_s_ = 0;
  bool line_open_ = false;         // TTY: a bar is drawn and not ended
};

}  // namespace retort
