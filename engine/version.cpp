// retort's version string.
#include "engine/version.h"
namespace retort {
const char* version() { return "0.1.0"; }
}
