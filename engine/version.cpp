// retort's version string (also anchors retort_lib while its layers fill in).
#include "engine/version.h"
namespace retort {
const char* version() { return "0.1.0"; }
}
