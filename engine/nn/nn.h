// One include for the module system: Module, initialisation, layers, attention blocks.
#pragma once
#include "engine/nn/attention.h"
#include "engine/nn/init.h"
#include "engine/nn/layers.h"
#include "engine/nn/module.h"
