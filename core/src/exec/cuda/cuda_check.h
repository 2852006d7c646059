// Error checking of the CUDA executor: the SDK's (imp/cuda/check.h).
#pragma once
#include "imp/cuda/check.h"
