// Which teachers of a stage read their taps from a feature cache instead of running every batch
// (teacher_cache = auto | off | memory | file), and the caches themselves.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include "train/recipe.h"
#include "train/trainer.h"
#include "transfer/feature_cache.h"

namespace retort {

// Decides per teacher whether its taps come from a feature cache, and builds the caches. "auto"
// caches only frozen teachers of multi-epoch stages on unaugmented data whose taps fit
// options.feature_cache_max_bytes; asking for a cache of augmented data is an error.
std::map<std::string, transfer::TeacherFeatureCache> build_teacher_caches(
    const Recipe& recipe, const StageSpec& stage, const std::map<std::string, std::shared_ptr<models::Model>>& teachers,
    const std::map<std::string, std::set<std::string>>& teacher_taps, const StageDatasets& data, Device device,
    const StageOptions& options, const std::function<void(const std::string&)>& log);

}  // namespace retort
