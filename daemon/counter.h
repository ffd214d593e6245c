// One translator counter as the control protocol reports it.
#pragma once

#include <cstdint>
#include <string>

namespace xlat64 {

struct Counter {
    std::string name;
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool drop = false;
    std::string help;
    bool event = false;  // not a packet (a host or block handed out): in no total
};

}  // namespace xlat64
