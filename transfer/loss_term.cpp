// Loss registry: each loss kind's schema (transfer/loss_schema.h) and factory, registered
// together; build_loss makes a term from its checked arguments.
#include "transfer/loss_term.h"
#include <mutex>
#include "engine/error.h"

namespace retort::transfer {
namespace {
struct Entry {
  std::string help;
  LossFactory factory;
};
std::map<std::string, Entry>& entries() {
  static std::map<std::string, Entry> e;
  return e;
}
}  // namespace

const models::Taps& StepInputs::teacher(const std::string& name) const {
  RETORT_CHECK(teachers, "loss reads teacher '{}' but the stage has no teachers", name);
  auto it = teachers->find(name);
  RETORT_CHECK(it != teachers->end(), "loss reads teacher '{}', which is not a teacher of this stage", name);
  return it->second;
}
const Tensor& StepInputs::student_tap(const std::string& tap) const {
  auto it = student->find(tap);
  RETORT_CHECK(it != student->end(), "loss reads student tap '{}', which the student did not produce", tap);
  return it->second;
}
const Tensor& StepInputs::teacher_tap(const std::string& name, const std::string& tap) const {
  const auto& taps = teacher(name);
  auto it = taps.find(tap);
  RETORT_CHECK(it != taps.end(), "loss reads tap '{}' of teacher '{}', which it did not produce", tap, name);
  return it->second;
}

const models::Model& stage_teacher(const BuildContext& c) { return stage_teacher(c, c.args->string("teacher")); }

const models::Model& stage_teacher(const BuildContext& c, const std::string& name) {
  auto it = c.teachers.find(name);
  RETORT_CHECK(it != c.teachers.end() && it->second,
               "{}: loss '{}' reads teacher '{}', which is not a teacher of this stage", c.args->where, c.args->name,
               name);
  return *it->second;
}

const models::Model& stage_student(const BuildContext& c) {
  RETORT_CHECK(c.student, "{}: loss '{}' built without a student model", c.args->where, c.args->name);
  return *c.student;
}

DType student_dtype(const BuildContext& c) {
  auto params = stage_student(c).named_parameters();
  return params.empty() ? DType::f32 : params.front().second.dtype();
}

// Called from the handler of with_recipe_line, so `throw;` rethrows e itself.
void rethrow_with_recipe_line(const BuildContext& c, const Error& e) {
  const std::string msg = e.what();
  if (msg.rfind(c.args->where, 0) == 0) throw;  // the one being handled, as it is
  fail("{}: {}", c.args->where, msg);
}

void register_loss(const std::string& name, std::vector<ParamSpec> params, std::string help, LossFactory factory,
                   double default_weight) {
  register_loss_schema(name, std::move(params), help, default_weight);
  entries()[name] = Entry{std::move(help), std::move(factory)};
}

std::unique_ptr<Loss> build_loss(const BuildContext& ctx) {
  RETORT_CHECK(ctx.args, "build_loss without the loss's arguments");
  register_builtin_losses();
  auto it = entries().find(ctx.args->name);
  RETORT_CHECK(it != entries().end(), "{}: unknown loss '{}'", ctx.args->where, ctx.args->name);
  return it->second.factory(ctx);
}

std::vector<LossInfo> list_losses() {
  register_builtin_losses();
  std::vector<LossInfo> out;
  for (auto& [name, e] : entries()) out.push_back({name, e.help, find_loss_schema(name)->default_weight});
  return out;
}

}  // namespace retort::transfer
