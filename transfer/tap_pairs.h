// The taps a multi-stage transfer loss reads (AT, NST, KDSVD, VID, AB, FSP): pair k is the
// student's tap student_names()[k] with tap teacher_names()[k] of one teacher. Here: reading a
// term's `student_taps` / `teacher_taps` keys and filling in their defaults, looking the names up
// in the models (find_tap_pairs), and TapPairs, which keeps the names (what the loss reports it
// reads), the modules turning each tap into a [B, C, H, W] map (make_to_map: maps as they are,
// ViT tokens laid out on their grid) and gathers the pairs' tensors from a step's StepInputs.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include "models/model.h"
#include "transfer/loss_term.h"

namespace retort::transfer {

// The tap names a term gives under `key` (a list key without a schema default), or none when it
// leaves the key out.
std::vector<std::string> given_taps(const LossArgs& args, std::string_view key);
// Fills in the lists a term left out: no student taps = `defaults`, no teacher taps = the
// student's names (VID, AB).
void default_taps(std::vector<std::string>& student_taps, std::vector<std::string>& teacher_taps,
                  const std::vector<std::string>& defaults);

// What find_tap_pairs adds to find_tap's error (which lists the model's taps) for a tap a ViT
// lacks: nothing, or that a ViT has no stage taps and its token taps go in the key
// (`student_taps` / `teacher_taps`), for any missing tap (AT, NST) or a missing "stage..." tap
// (KDSVD).
enum class VitTapHint { none, any_tap, stage_taps };

struct TapInfoPairs {
  std::vector<models::TapInfo> student, teacher;
};
// The TapInfo of every pair for `input`, pair by pair (student, then teacher): the lists must be
// of equal length (the caller says how they differ). `loss` names the loss in the errors.
TapInfoPairs find_tap_pairs(const models::Model& student, const models::Model& teacher,
                            const std::string& teacher_name, const std::vector<std::string>& student_taps,
                            const std::vector<std::string>& teacher_taps, const Shape& input,
                            const std::string& loss, VitTapHint hint = VitTapHint::none);

class TapPairs {
 public:
  // `loss` names the loss in make_to_map's errors ("<loss>: student"); without `to_map` the taps
  // are taken as they are (AB: maps only) and student_map / teacher_map must not be called.
  TapPairs(std::string teacher, std::string loss, bool to_map = true);
  // Appends pair size(): the names and, with to_map, each tap's module into a map (throws for a
  // vector tap or a token count that is no square grid).
  void add(const models::TapInfo& student, const models::TapInfo& teacher);

  size_t size() const { return student_names_.size(); }
  const std::string& teacher() const { return teacher_; }
  const std::vector<std::string>& student_names() const { return student_names_; }
  const std::vector<std::string>& teacher_names() const { return teacher_names_; }
  // Pair k's student tap as a map (with autograd), and its teacher tap as a constant map
  // (detached, computed without autograd).
  Tensor student_map(size_t k, const Tensor& tap) const;
  Tensor teacher_map(size_t k, const Tensor& tap) const;

  struct Tensors {
    std::vector<Tensor> student, teacher;
  };
  // Every pair's tensors in a step, in pair order: in.student_tap(student_names()[k]) and
  // in.teacher_tap(teacher(), teacher_names()[k]).
  Tensors gather(const StepInputs& in) const;
  // Every pair's taps as maps (student_map, teacher_map); one tensor per pair on either side.
  Tensors maps(const std::vector<Tensor>& student, const std::vector<Tensor>& teacher) const;

 private:
  std::string teacher_, loss_;
  bool to_map_;
  std::vector<std::string> student_names_, teacher_names_;
  std::vector<std::shared_ptr<nn::Module>> student_to_map_, teacher_to_map_;
};

}  // namespace retort::transfer
