#include "daemon/rfc6052.h"

#include <stdexcept>
#include <string>

namespace xlat64 {
namespace {

// Bits 64..71 of an IPv4-embedded address (RFC 6052 section 2.2) stay outside the embedded IPv4
// address, for compatibility with the RFC 4291 interface identifier format.
constexpr size_t kUOctet = 8;

void require_allowed_length(const Ipv6Prefix& pool6) {
    if (!rfc6052_prefix_length_allowed(pool6.len)) {
        throw std::invalid_argument("RFC 6052 prefix length /" + std::to_string(pool6.len) +
                                    " is not /32, /40, /48, /56, /64 or /96");
    }
}

// Byte positions of the four IPv4 octets inside the IPv6 address: they start right after the
// prefix (every allowed length is a multiple of 8) and skip the u-octet.
std::array<size_t, 4> embedded_octet_positions(unsigned prefix_len) {
    std::array<size_t, 4> positions{};
    size_t pos = prefix_len / 8;
    for (auto& p : positions) {
        if (pos == kUOctet) {
            ++pos;
        }
        p = pos++;
    }
    return positions;
}

}  // namespace

Ipv6Address rfc6052_embed(const Ipv6Prefix& pool6, const Ipv4Address& v4) {
    require_allowed_length(pool6);
    // Starting from the masked prefix leaves the u-octet and the suffix zero, as section 2.2
    // requires of senders.
    Ipv6Address out = mask_address(pool6.addr, pool6.len);
    auto positions = embedded_octet_positions(pool6.len);
    for (size_t i = 0; i < v4.size(); ++i) {
        out[positions[i]] = v4[i];
    }
    return out;
}

std::optional<Ipv4Address> rfc6052_extract(const Ipv6Prefix& pool6, const Ipv6Address& v6) {
    require_allowed_length(pool6);
    if (!contains(pool6, v6)) {
        return std::nullopt;
    }
    // The u-octet and suffix are not checked: the IPv4 address is fully determined by the
    // embedded bits, and RFC 6052 reserves the suffix for future extensions, so a packet from a
    // peer that uses those bits must still translate to the same IPv4 address (liberal on
    // receipt, strict when sending).
    Ipv4Address out{};
    auto positions = embedded_octet_positions(pool6.len);
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = v6[positions[i]];
    }
    return out;
}

}  // namespace xlat64
