// The runtime-API header name mask_assembly.h includes, for the CPU emulation.
#pragma once
#include "cuda_runtime.h"
