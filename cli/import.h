// xlat64ctl subscriber import FILE: bulk provisioning (daemon/subscriber_import.h's format).
#pragma once

#include <chrono>
#include <string>

namespace xlat64 {

struct ImportOptions {
    std::string socket;
    std::string file;  // "-": standard input
    bool json = false;
    std::chrono::milliseconds timeout{300000};
};

// Checks the whole file (syntax here, then the daemon's configuration and the free blocks), and
// only then imports it chunk by chunk. Returns the exit status; problems go to stderr.
int run_import(const ImportOptions& options);

}  // namespace xlat64
