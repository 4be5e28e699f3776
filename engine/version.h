// retort's version string.
#pragma once
namespace retort {
const char* version();
}
