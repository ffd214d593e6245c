// IPv4-embedded IPv6 addresses (RFC 6052): the algorithmic mapping between pool6 and IPv4.
#pragma once

#include <optional>

#include "config/ip_address.h"

namespace xlat64 {

// RFC 6052 section 2.2 defines the address format for these prefix lengths only.
// Inline so the config validator (which xlat64_core depends on) can use it without a link cycle.
constexpr bool rfc6052_prefix_length_allowed(unsigned len) {
    return len == 32 || len == 40 || len == 48 || len == 56 || len == 64 || len == 96;
}

// Builds PREFIX + IPv4 address (+ zero u-octet and suffix). Throws std::invalid_argument when
// pool6's length is not one rfc6052_prefix_length_allowed() accepts: that is a caller's bug, the
// validator never lets such a prefix through.
Ipv6Address rfc6052_embed(const Ipv6Prefix& pool6, const Ipv4Address& v4);

// The IPv4 address embedded in v6, or nullopt when v6 is not inside pool6. Same precondition on
// pool6's length as rfc6052_embed.
std::optional<Ipv4Address> rfc6052_extract(const Ipv6Prefix& pool6, const Ipv6Address& v6);

}  // namespace xlat64
