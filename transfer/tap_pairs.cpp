// The tap pairs of a multi-stage loss (see transfer/tap_pairs.h).
#include "transfer/tap_pairs.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "transfer/adapters.h"

namespace retort::transfer {

std::vector<std::string> given_taps(const LossArgs& args, std::string_view key) {
  return args.has(key) ? args.strings(key) : std::vector<std::string>{};
}

void default_taps(std::vector<std::string>& student_taps, std::vector<std::string>& teacher_taps,
                  const std::vector<std::string>& defaults) {
  if (student_taps.empty()) student_taps = defaults;
  if (teacher_taps.empty()) teacher_taps = student_taps;
}

TapInfoPairs find_tap_pairs(const models::Model& student, const models::Model& teacher,
                            const std::string& teacher_name, const std::vector<std::string>& student_taps,
                            const std::vector<std::string>& teacher_taps, const Shape& input,
                            const std::string& loss, VitTapHint hint) {
  RETORT_CHECK(student_taps.size() == teacher_taps.size(), "{}: {} student taps but {} teacher taps", loss,
               student_taps.size(), teacher_taps.size());
  auto lookup = [&](const models::Model& m, const std::string& tap, const std::string& side, const char* key) {
    try {
      return find_tap(m, tap, input, loss, side);
    } catch (const Error& e) {
      const bool explain = hint != VitTapHint::none && m.family() == "vit" &&
                           (hint == VitTapHint::any_tap || tap.rfind("stage", 0) == 0);
      if (!explain) throw;
      fail("{} (a ViT has no stage taps: name its token taps in `{}`, e.g. [\"tokens.1\", \"tokens.2\", "
           "\"tokens.3\"])",
           e.what(), key);
    }
  };
  TapInfoPairs out;
  for (size_t k = 0; k < student_taps.size(); ++k) {
    out.student.push_back(lookup(student, student_taps[k], "student", "student_taps"));
    out.teacher.push_back(lookup(teacher, teacher_taps[k], "teacher '" + teacher_name + "'", "teacher_taps"));
  }
  return out;
}

TapPairs::TapPairs(std::string teacher, std::string loss, bool to_map)
    : teacher_(std::move(teacher)), loss_(std::move(loss)), to_map_(to_map) {}

void TapPairs::add(const models::TapInfo& student, const models::TapInfo& teacher) {
  student_names_.push_back(student.name);
  teacher_names_.push_back(teacher.name);
  if (!to_map_) return;
  student_to_map_.push_back(make_to_map(student, loss_ + ": student"));
  teacher_to_map_.push_back(make_to_map(teacher, loss_ + ": teacher"));
}

Tensor TapPairs::student_map(size_t k, const Tensor& tap) const { return student_to_map_[k]->forward(tap); }

Tensor TapPairs::teacher_map(size_t k, const Tensor& tap) const {
  NoGradGuard no_grad;
  return teacher_to_map_[k]->forward(tap.detach());
}

TapPairs::Tensors TapPairs::gather(const StepInputs& in) const {
  Tensors out;
  for (size_t k = 0; k < size(); ++k) {
    out.student.push_back(in.student_tap(student_names_[k]));
    out.teacher.push_back(in.teacher_tap(teacher_, teacher_names_[k]));
  }
  return out;
}

TapPairs::Tensors TapPairs::maps(const std::vector<Tensor>& student, const std::vector<Tensor>& teacher) const {
  RETORT_CHECK(student.size() == size() && teacher.size() == size(),
               "{}: {} student and {} teacher tensors for {} tap pairs", loss_, student.size(), teacher.size(), size());
  Tensors out;
  for (size_t k = 0; k < size(); ++k) {
    out.student.push_back(student_map(k, student[k]));
    out.teacher.push_back(teacher_map(k, teacher[k]));
  }
  return out;
}

}  // namespace retort::transfer
