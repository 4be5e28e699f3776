// One include for users of the engine: tensors, autograd, ops, random numbers.
#pragma once
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/memory_format.h"
#include "engine/random.h"
#include "engine/tensor.h"
