// The engine's KV pool is paged in blocks of kKvBlockTokens positions: what the engine allocates, and what the server
// and `imp run` count when they check that a request fits the pool.
#pragma once
#include <cstdint>

namespace imp {

constexpr int kKvBlockTokens = 16;

// Blocks that hold `tokens` positions.
inline int64_t kv_blocks_for(int64_t tokens) { return (tokens + kKvBlockTokens - 1) / kKvBlockTokens; }

}  // namespace imp
