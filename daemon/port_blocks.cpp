#include "daemon/port_blocks.h"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace xlat64 {
namespace {

using u128 = unsigned __int128;

u128 to_u128(const Ipv6Address& a) {
    u128 v = 0;
    for (uint8_t byte : a) {
        v = v << 8 | byte;
    }
    return v;
}

Ipv6Address from_u128(u128 v) {
    Ipv6Address a{};
    for (int i = 15; i >= 0; --i) {
        a[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
        v >>= 8;
    }
    return a;
}

uint32_t to_u32(const Ipv4Address& a) {
    return uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3];
}

Ipv4Address from_u32(uint32_t v) {
    return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
            static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Index of the range holding VALUE, given each range's first value in ascending order.
size_t range_of(const std::vector<uint64_t>& firsts, uint64_t value) {
    return static_cast<size_t>(std::upper_bound(firsts.begin(), firsts.end(), value) -
                               firsts.begin()) -
           1;
}

}  // namespace

SubscriberSpace::SubscriberSpace(const Nat64Config& config)
    : prefixes_(config.prefixes),
      subscriber_length_(config.subscriber_length),
      internal_base_(to_u32(config.internal_pool.addr)),
      internal_size_(config.internal_pool.len == 0 ? 0 : 1u << (32 - config.internal_pool.len)),
      hosts_(config.hosts_per_subscriber) {
    for (const Ipv6Prefix& p : prefixes_) {
        first_index_.push_back(count_);
        unsigned bits = subscriber_length_ - p.len;
        if (bits >= 40) {
            // The internal pool holds at most 2^32 addresses; the validator refuses more.
            throw std::invalid_argument("nat64: " + to_string(p) + " holds too many subscribers");
        }
        count_ += uint64_t{1} << bits;
    }
}

Ipv6Prefix SubscriberSpace::prefix(uint64_t index) const {
    size_t i = range_of(first_index_, index);
    u128 offset = static_cast<u128>(index - first_index_[i]) << (128 - subscriber_length_);
    return {from_u128(to_u128(prefixes_[i].addr) + offset),
            static_cast<uint8_t>(subscriber_length_)};
}

Ipv4Prefix SubscriberSpace::internal_block(uint64_t index) const {
    auto len = static_cast<uint8_t>(32 - std::countr_zero(hosts_));
    return {from_u32(internal_base_ + static_cast<uint32_t>(index * hosts_)), len};
}

// On 128-bit integers rather than with contains(): a restore and an import ask this for every
// one of a million subscribers. The prefixes have no host bits (the configuration refuses them).
std::optional<uint64_t> SubscriberSpace::index_of(const Ipv6Address& address) const {
    const u128 a = to_u128(address);
    for (size_t i = 0; i < prefixes_.size(); ++i) {
        const u128 base = to_u128(prefixes_[i].addr);
        const unsigned len = prefixes_[i].len;
        if (len == 0 || ((a ^ base) >> (128 - len)) == 0) {
            // subscriber_length_ >= 1, so the shift is below 128.
            return first_index_[i] +
                   static_cast<uint64_t>((a - base) >> (128 - subscriber_length_));
        }
    }
    return std::nullopt;
}

std::optional<uint64_t> SubscriberSpace::index_of_internal(const Ipv4Address& address) const {
    uint64_t offset = uint32_t(to_u32(address) - internal_base_);
    if (to_u32(address) < internal_base_ || offset >= count_ * hosts_) {
        return std::nullopt;
    }
    return offset / hosts_;
}

BlockSpace::BlockSpace(const Nat64Config& config)
    : prefixes_(config.public_prefixes),
      blocks_per_address_(nat64_blocks_per_address(config)),
      first_port_(config.ports.first),
      block_size_(config.block_size) {
    for (const Ipv4Prefix& p : prefixes_) {
        first_address_.push_back(address_count_);
        address_count_ += uint64_t{1} << (32 - p.len);
    }
}

Ipv4Address BlockSpace::address(uint64_t address_index) const {
    size_t i = range_of(first_address_, address_index);
    return from_u32(to_u32(prefixes_[i].addr) +
                    static_cast<uint32_t>(address_index - first_address_[i]));
}

std::optional<uint64_t> BlockSpace::address_index(const Ipv4Address& address) const {
    for (size_t i = 0; i < prefixes_.size(); ++i) {
        if (contains(prefixes_[i], address)) {
            return first_address_[i] + (to_u32(address) - to_u32(prefixes_[i].addr));
        }
    }
    return std::nullopt;
}

PortBlock BlockSpace::block(uint64_t index) const {
    uint64_t on_address = index % blocks_per_address_;
    auto first = static_cast<uint16_t>(first_port_ + on_address * block_size_);
    return {address(index / blocks_per_address_), first,
            static_cast<uint16_t>(first + block_size_ - 1)};
}

std::optional<uint64_t> BlockSpace::index_of(const Ipv4Address& address, uint16_t port) const {
    auto a = address_index(address);
    if (!a || port < first_port_) {
        return std::nullopt;
    }
    uint64_t on_address = (port - first_port_) / block_size_;
    if (on_address >= blocks_per_address_) {
        return std::nullopt;  // the ports left over above the last whole block
    }
    return *a * blocks_per_address_ + on_address;
}

DeterministicMap::DeterministicMap(const Nat64Config& config)
    : subscribers_(config), blocks_(config) {
    if (subscribers_.count() > blocks_.count()) {
        throw std::invalid_argument("nat64: more subscribers than port blocks");
    }
}

SubscriberMapping DeterministicMap::mapping(uint64_t index) const {
    return {index, subscribers_.prefix(index), subscribers_.internal_block(index),
            blocks_.block(index)};
}

std::optional<SubscriberMapping> DeterministicMap::for_subscriber(
    const Ipv6Address& address) const {
    auto index = subscribers_.index_of(address);
    return index ? std::optional(mapping(*index)) : std::nullopt;
}

std::optional<SubscriberMapping> DeterministicMap::trace(const Ipv4Address& address,
                                                         uint16_t port) const {
    auto index = blocks_.index_of(address, port);
    if (!index || *index >= subscribers_.count()) {
        return std::nullopt;  // a block no subscriber uses
    }
    return mapping(*index);
}

DynamicAllocator::DynamicAllocator(uint64_t block_count, int64_t idle_timeout_seconds,
                                   const DynamicState& restored)
    : block_count_(block_count), idle_timeout_(idle_timeout_seconds) {
    std::vector<uint64_t> blocks;
    for (const Lease& lease : restored.leases) {
        if (lease.block >= block_count_ || !leases_.emplace(lease.subscriber, lease).second) {
            continue;  // a block the configuration no longer has, or a duplicate subscriber
        }
        blocks.push_back(lease.block);
        next_unused_ = std::max(next_unused_, lease.block + 1);
    }
    // Restoring is the one O(n) step: every block below the highest lease that is not leased.
    std::sort(blocks.begin(), blocks.end());
    auto leased = blocks.begin();
    for (uint64_t b = 0; b < next_unused_; ++b) {
        if (leased != blocks.end() && *leased == b) {
            ++leased;
        } else {
            released_.insert(released_.end(), b);
        }
    }
}

std::optional<uint64_t> DynamicAllocator::acquire(uint64_t subscriber, int64_t now) {
    if (auto it = leases_.find(subscriber); it != leases_.end()) {
        it->second.last_used = now;
        return it->second.block;
    }
    uint64_t block = 0;
    if (!released_.empty()) {
        block = *released_.begin();
        released_.erase(released_.begin());
    } else if (next_unused_ < block_count_) {
        block = next_unused_++;
    } else {
        return std::nullopt;
    }
    leases_.emplace(subscriber, Lease{subscriber, block, now});
    return block;
}

bool DynamicAllocator::touch(uint64_t subscriber, int64_t now) {
    auto it = leases_.find(subscriber);
    if (it == leases_.end()) {
        return false;
    }
    it->second.last_used = std::max(it->second.last_used, now);
    return true;
}

void DynamicAllocator::free_block(uint64_t block) {
    // Keep "everything at or above next_unused_ is free" true without growing released_.
    if (block + 1 == next_unused_) {
        --next_unused_;
        while (!released_.empty() && *released_.rbegin() + 1 == next_unused_) {
            released_.erase(std::prev(released_.end()));
            --next_unused_;
        }
    } else {
        released_.insert(block);
    }
}

bool DynamicAllocator::release(uint64_t subscriber) {
    auto it = leases_.find(subscriber);
    if (it == leases_.end()) {
        return false;
    }
    free_block(it->second.block);
    leases_.erase(it);
    return true;
}

std::vector<Lease> DynamicAllocator::expire(int64_t now) {
    std::vector<Lease> expired;
    for (const auto& [subscriber, lease] : leases_) {
        if (now - lease.last_used >= idle_timeout_) {
            expired.push_back(lease);
        }
    }
    std::sort(expired.begin(), expired.end(),
              [](const Lease& a, const Lease& b) { return a.block < b.block; });
    for (const Lease& lease : expired) {
        release(lease.subscriber);
    }
    return expired;
}

std::optional<Lease> DynamicAllocator::lease_of(uint64_t subscriber) const {
    auto it = leases_.find(subscriber);
    return it == leases_.end() ? std::nullopt : std::optional(it->second);
}

DynamicState DynamicAllocator::state() const {
    DynamicState state;
    for (const auto& [subscriber, lease] : leases_) {
        state.leases.push_back(lease);
    }
    std::sort(state.leases.begin(), state.leases.end(),
              [](const Lease& a, const Lease& b) { return a.block < b.block; });
    return state;
}

}  // namespace xlat64
