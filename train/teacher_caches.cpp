// Teacher feature caches of a stage (see train/teacher_caches.h).
#include "train/teacher_caches.h"
#include "engine/dist/communicator.h"
#include "engine/error.h"

namespace retort {

std::map<std::string, transfer::TeacherFeatureCache> build_teacher_caches(
    const Recipe& recipe, const StageSpec& stage, const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
    const std::map<std::string, std::set<std::string>>& teacher_taps, const StageDatasets& data, Device device,
    const StageOptions& options, const std::function<void(const std::string&)>& log) {
  std::map<std::string, transfer::TeacherFeatureCache> caches;
  TeacherCache mode = stage.teacher_cache;
  if (mode == TeacherCache::off || teacher_taps.empty()) return caches;
  if (data.augmented) {
    RETORT_CHECK(mode == TeacherCache::auto_, "{}: stage '{}' asks for teacher_cache = \"{}\", but its data is augmented "
                 "(random crop or flip), so the teachers' features change every epoch; use \"off\" or \"auto\"",
                 recipe.where(stage.pos), stage.name, to_string(mode));
    log(fmt::format("stage '{}': teachers run on every batch (augmented data cannot be cached)", stage.name));
    return caches;
  }
  // auto: a one-epoch stage runs each teacher once per image anyway, and smoke runs see a
  // few batches: caching pays only when images come back. A step replayed as a CUDA graph
  // cannot look features up by the batch's positions (train/step_graph.h).
  if (mode == TeacherCache::auto_ && (stage.epochs < 2 || options.max_batches_per_epoch > 0 || stage.cuda_graph))
    return caches;
  std::string data_key = fmt::format("{} image_size {} mean [{}] std [{}] transforms [", to_string(recipe.data.dataset),
                                     recipe.data.image_size, fmt::join(recipe.data.mean, ","),
                                     fmt::join(recipe.data.std, ","));
  for (const auto& t : data.eval_transforms) data_key += t.name + ";";
  data_key += "]";
  const Shape input{1, data.train.dataset().channels, recipe.data.image_size, recipe.data.image_size};
  for (const auto& [name, taps] : teacher_taps) {
    auto& teacher = *teachers.at(name);
    if (mode == TeacherCache::auto_) {
      const int64_t bytes = transfer::estimated_cache_bytes(teacher, taps, input, data.train.size());
      if (bytes > options.feature_cache_max_bytes) {
        log(fmt::format("stage '{}': teacher '{}' runs on every batch (its taps would take {:.0f} MB to cache)",
                        stage.name, name, double(bytes) / 1e6));
        continue;
      }
    }
    const std::string dir = mode == TeacherCache::file ? options.feature_cache_dir : std::string();
    RETORT_CHECK(mode != TeacherCache::file || !dir.empty(), "stage '{}': teacher_cache = \"file\" needs a cache directory",
                 stage.name);
    caches.emplace(name, transfer::TeacherFeatureCache(teacher, name, taps, data.train, data.eval_transforms, device,
                                                       data_key, dir, log, &dist::world()));
  }
  return caches;
}

}  // namespace retort
