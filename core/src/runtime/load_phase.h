// Where the weight upload's time goes: load_weights() sums the wall time and the file bytes of the weights of each
// kind (one quant format's matrices, one format's expert stacks, fp32 vectors), in the order kinds first appear.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace imp {

struct LoadPhase {
    std::string what;         // "<format> matrices", "<format> experts" or "vectors"
    double seconds = 0;       // wall time of its weights' uploads (file read, conversion, host-to-device copy)
    uint64_t file_bytes = 0;  // the file bytes those weights consumed
    int64_t count = 0;        // weights (an expert stack counts once)
};

// Adds one weight's time and bytes to the phase named `what` (appended when new).
inline void add_load_phase(std::vector<LoadPhase>& phases, const std::string& what, double seconds, uint64_t bytes) {
    for (auto& p : phases)
        if (p.what == what) {
            p.seconds += seconds;
            p.file_bytes += bytes;
            ++p.count;
            return;
        }
    phases.push_back({what, seconds, bytes, 1});
}

}  // namespace imp
