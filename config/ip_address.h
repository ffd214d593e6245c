// IPv4/IPv6 addresses and prefixes as the project passes them around: bytes in network order, the
// same representation the BPF maps use, so nothing converts between host and wire order.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xlat64 {

using Ipv4Address = std::array<uint8_t, 4>;
using Ipv6Address = std::array<uint8_t, 16>;

// The order of (address bytes, length), compared as big-endian integers: the same order as
// comparing the byte arrays, without a memcmp call per comparison, which dominated sorting and
// diffing million-entry EAMTs.
namespace prefix_order {
template <size_t N>
uint64_t be_word(const std::array<uint8_t, N>& bytes, size_t first) {
    uint64_t word = 0;
    for (size_t i = first; i < first + 8 && i < N; ++i) {
        word = word << 8 | bytes[i];
    }
    return word;
}
}  // namespace prefix_order

struct Ipv4Prefix {
    Ipv4Address addr{};
    uint8_t len = 0;
    bool operator==(const Ipv4Prefix&) const = default;
    std::strong_ordering operator<=>(const Ipv4Prefix& other) const {
        const uint64_t a = prefix_order::be_word(addr, 0) << 8 | len;
        const uint64_t b = prefix_order::be_word(other.addr, 0) << 8 | other.len;
        return a <=> b;
    }
};

struct Ipv6Prefix {
    Ipv6Address addr{};
    uint8_t len = 0;
    bool operator==(const Ipv6Prefix&) const = default;
    std::strong_ordering operator<=>(const Ipv6Prefix& other) const {
        if (auto c = prefix_order::be_word(addr, 0) <=> prefix_order::be_word(other.addr, 0);
            c != 0) {
            return c;
        }
        if (auto c = prefix_order::be_word(addr, 8) <=> prefix_order::be_word(other.addr, 8);
            c != 0) {
            return c;
        }
        return len <=> other.len;
    }
};

std::optional<Ipv4Address> parse_ipv4_address(std::string_view text);
std::optional<Ipv6Address> parse_ipv6_address(std::string_view text);
// "ADDR/LEN"; a bare address is a host prefix (/32, /128). Host bits must be zero: a prefix with
// host bits set is almost always a typo, so it is refused rather than silently masked.
std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);
std::optional<Ipv6Prefix> parse_ipv6_prefix(std::string_view text);

std::string to_string(const Ipv4Address& addr);
std::string to_string(const Ipv6Address& addr);
std::string to_string(const Ipv4Prefix& prefix);
std::string to_string(const Ipv6Prefix& prefix);

// Clears every bit past `len`.
template <size_t N>
std::array<uint8_t, N> mask_address(const std::array<uint8_t, N>& addr, unsigned len) {
    std::array<uint8_t, N> out{};
    for (size_t i = 0; i < N; ++i) {
        unsigned bits = len >= (i + 1) * 8 ? 8 : (len > i * 8 ? len - i * 8 : 0);
        out[i] = bits == 0 ? 0 : static_cast<uint8_t>(addr[i] & (0xff00u >> bits));
    }
    return out;
}

template <size_t N>
bool prefix_contains(const std::array<uint8_t, N>& prefix, unsigned len,
                     const std::array<uint8_t, N>& addr) {
    return mask_address(addr, len) == prefix;
}

inline bool contains(const Ipv4Prefix& p, const Ipv4Address& a) {
    return prefix_contains(p.addr, p.len, a);
}
inline bool contains(const Ipv6Prefix& p, const Ipv6Address& a) {
    return prefix_contains(p.addr, p.len, a);
}
// Two prefixes overlap when one contains the other.
inline bool overlaps(const Ipv4Prefix& a, const Ipv4Prefix& b) {
    return a.len <= b.len ? contains(a, b.addr) : contains(b, a.addr);
}
inline bool overlaps(const Ipv6Prefix& a, const Ipv6Prefix& b) {
    return a.len <= b.len ? contains(a, b.addr) : contains(b, a.addr);
}

}  // namespace xlat64
