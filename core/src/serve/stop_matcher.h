// Stop strings over streamed text: text goes in piece by piece, and what comes out is safe to send — text that
// could still be the start of a stop string is held back until it can no longer be. On a match, the output ends
// just before the stop string.
#pragma once
#include <string>
#include <vector>

namespace imp::serve {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    // Appends `text`; returns the text now safe to send. After a match, stopped() is true and later calls return "".
    std::string push(const std::string& text);
    // The text held back (at the end of generation, when no stop string can follow).
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace imp::serve
