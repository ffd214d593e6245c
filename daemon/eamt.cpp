#include "daemon/eamt.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace xlat64 {
namespace {

// Overwrites the last `bits` bits of dst with the last `bits` bits of src. With equal suffix
// lengths on both sides, RFC 7757's suffix copy is exactly this: the suffix is the tail of both
// addresses.
template <size_t N, size_t M>
void copy_suffix(const std::array<uint8_t, N>& src, std::array<uint8_t, M>& dst, unsigned bits) {
    for (size_t i = 0; bits > 0; ++i) {
        unsigned take = std::min(bits, 8u);
        auto mask = static_cast<uint8_t>((1u << take) - 1);
        uint8_t& out = dst[M - 1 - i];
        out = static_cast<uint8_t>((out & ~mask) | (src[N - 1 - i] & mask));
        bits -= take;
    }
}

template <typename Prefix>
void require_masked(const Prefix& prefix) {
    if (mask_address(prefix.addr, prefix.len) != prefix.addr) {
        throw std::invalid_argument("EAM prefix " + to_string(prefix.addr) + "/" +
                                    std::to_string(prefix.len) + " has host bits set");
    }
}

template <typename Index, typename Prefix>
void require_unmapped(const Index& index, const Prefix& prefix,
                      const std::vector<EamEntry>& entries) {
    auto by_len = index.find(prefix.len);
    if (by_len == index.end()) {
        return;
    }
    auto hit = by_len->second.find(prefix.addr);
    if (hit != by_len->second.end()) {
        const EamEntry& other = entries[hit->second];
        throw std::invalid_argument("EAM prefix " + to_string(prefix) +
                                    " is already mapped by the entry " + to_string(other.ipv4) +
                                    " <-> " + to_string(other.ipv6));
    }
}

}  // namespace

void Eamt::add(const EamEntry& entry) {
    require_masked(entry.ipv4);
    require_masked(entry.ipv6);
    if (32 - entry.ipv4.len != 128 - entry.ipv6.len) {
        throw std::invalid_argument("EAM " + to_string(entry.ipv4) + " <-> " +
                                    to_string(entry.ipv6) +
                                    " has suffixes of different lengths; they must be equal");
    }
    require_unmapped(by_ipv4_, entry.ipv4, entries_);
    require_unmapped(by_ipv6_, entry.ipv6, entries_);

    // Insert into the vector first and undo step by step, so a bad_alloc leaves no half entry.
    size_t index = entries_.size();
    entries_.push_back(entry);
    try {
        by_ipv4_[entry.ipv4.len].emplace(entry.ipv4.addr, index);
        try {
            by_ipv6_[entry.ipv6.len].emplace(entry.ipv6.addr, index);
        } catch (...) {
            by_ipv4_[entry.ipv4.len].erase(entry.ipv4.addr);
            throw;
        }
    } catch (...) {
        entries_.pop_back();
        throw;
    }
}

template <size_t N>
std::optional<size_t> Eamt::longest_match(const Index<N>& index,
                                          const std::array<uint8_t, N>& addr) {
    for (const auto& [len, by_addr] : index) {
        auto hit = by_addr.find(mask_address(addr, len));
        if (hit != by_addr.end()) {
            return hit->second;
        }
    }
    return std::nullopt;
}

std::optional<Ipv6Address> Eamt::translate_v4(const Ipv4Address& addr) const {
    auto match = longest_match(by_ipv4_, addr);
    if (!match) {
        return std::nullopt;
    }
    const EamEntry& entry = entries_[*match];
    Ipv6Address out = entry.ipv6.addr;
    copy_suffix(addr, out, 32 - entry.ipv4.len);
    return out;
}

std::optional<Ipv4Address> Eamt::translate_v6(const Ipv6Address& addr) const {
    auto match = longest_match(by_ipv6_, addr);
    if (!match) {
        return std::nullopt;
    }
    const EamEntry& entry = entries_[*match];
    Ipv4Address out = entry.ipv4.addr;
    copy_suffix(addr, out, 32 - entry.ipv4.len);
    return out;
}

}  // namespace xlat64
