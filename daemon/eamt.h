// The Explicit Address Mapping Table (RFC 7757) in C++: the reference model of the kernel's two
// EAMT LPM tries. The userspace slow path translates with it and the datapath fuzzer checks the
// BPF program against it, so it favours obvious correctness over cleverness.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace xlat64 {

class Eamt {
  public:
    // Adds an entry. Throws std::invalid_argument when a prefix has host bits set, when the two
    // suffix lengths differ (xlat64 maps each address one to one), or when either prefix is
    // already the same-side prefix of another entry (the table could not say which one applies).
    // Nested prefixes of different lengths are fine: lookups take the longest match (RFC 7757
    // section 3.2). On an exception the table is unchanged.
    void add(const EamEntry& entry);

    // Longest match on the IPv4 side; the address's suffix bits are copied into the IPv6 prefix.
    std::optional<Ipv6Address> translate_v4(const Ipv4Address& addr) const;
    // Longest match on the IPv6 side; the address's suffix bits are copied into the IPv4 prefix.
    std::optional<Ipv4Address> translate_v6(const Ipv6Address& addr) const;

    size_t size() const { return entries_.size(); }
    // In the order they were added.
    const std::vector<EamEntry>& entries() const { return entries_; }

  private:
    struct AddressHash {
        template <size_t N>
        size_t operator()(const std::array<uint8_t, N>& addr) const {
            return std::hash<std::string_view>{}(
                std::string_view(reinterpret_cast<const char*>(addr.data()), N));
        }
    };
    // Prefix length (longest first, so lookups stop at the first hit) → masked address → index
    // into entries_. Only lengths in use have a map, so a lookup costs one hash probe per
    // distinct length present, independent of the number of entries.
    template <size_t N>
    using Index =
        std::map<unsigned, std::unordered_map<std::array<uint8_t, N>, size_t, AddressHash>,
                 std::greater<>>;

    template <size_t N>
    static std::optional<size_t> longest_match(const Index<N>& index,
                                               const std::array<uint8_t, N>& addr);

    std::vector<EamEntry> entries_;
    Index<4> by_ipv4_;
    Index<16> by_ipv6_;
};

}  // namespace xlat64
