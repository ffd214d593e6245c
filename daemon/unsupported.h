// Configuration the parser validates but this xlat64d does not apply yet. Refusing it is better
// than a daemon that accepts a section and silently does nothing with it: an operator who
// configures stateful NAT64 must not believe subscribers are being translated.
#pragma once

#include <optional>

#include "config/config.h"

namespace xlat64 {

// Throws ConfigError naming the section when `config` uses something not yet implemented.
inline void refuse_unimplemented(const Config& config, const std::string& source) {
    if (config.nat64) {
        throw ConfigError(source,
                          {ConfigIssue{"nat64", 0, 0,
                                       "stateful NAT64 is validated but not yet applied by this "
                                       "release of xlat64d; remove the section to run"}});
    }
}

}  // namespace xlat64
