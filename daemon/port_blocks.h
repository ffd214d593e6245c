// Subscribers, their internal IPv4 blocks and their public port blocks (stateful NAT64 as
// stateless translation + kernel NAT44, DESIGN.md). Pure arithmetic on a validated Nat64Config:
// every mapping is O(1) (O(log P) in the number P of configured prefixes), with no per-subscriber
// tables, so a million subscribers cost a million constant-time steps.
//
// Numbering:
// - subscriber index: the admitted prefixes in configuration order, each cut into prefixes of
//   subscriber_length in address order; index i owns internal block
//   internal_pool + i * hosts_per_subscriber (hosts_per_subscriber addresses).
// - block index: k -> public address k div B (the public addresses in configuration order, B
//   blocks on each), port block k mod B on it. Address-major, so that appending a public prefix
//   only adds blocks and every existing block keeps its meaning across a reload. (Dynamic mode
//   hands blocks out round-robin over the addresses instead: see nat64_free_order.)
// - deterministic mode (RFC 7422): subscriber i uses block i.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "config/nat64_config.h"

namespace xlat64 {

struct PortBlock {
    Ipv4Address address{};
    uint16_t first_port = 0;
    uint16_t last_port = 0;
    auto operator<=>(const PortBlock&) const = default;
};

// The subscribers a configuration admits and their internal blocks.
class SubscriberSpace {
  public:
    explicit SubscriberSpace(const Nat64Config& config);

    uint64_t count() const { return count_; }
    Ipv6Prefix prefix(uint64_t index) const;
    Ipv4Prefix internal_block(uint64_t index) const;
    // The subscriber owning an IPv6 address (any host inside its prefix), if admitted.
    std::optional<uint64_t> index_of(const Ipv6Address& address) const;
    // The subscriber owning an internal IPv4 address, if any.
    std::optional<uint64_t> index_of_internal(const Ipv4Address& address) const;

  private:
    std::vector<Ipv6Prefix> prefixes_;
    std::vector<uint64_t> first_index_;  // subscriber index of each prefix's first subscriber
    unsigned subscriber_length_;
    uint32_t internal_base_;
    uint32_t internal_size_;
    uint32_t hosts_;
    uint64_t count_ = 0;
};

// The port blocks of the public addresses.
class BlockSpace {
  public:
    explicit BlockSpace(const Nat64Config& config);

    uint64_t count() const { return address_count_ * blocks_per_address_; }
    PortBlock block(uint64_t index) const;
    // The block holding a public address and port (nullopt outside every block).
    std::optional<uint64_t> index_of(const Ipv4Address& address, uint16_t port) const;

  private:
    Ipv4Address address(uint64_t address_index) const;
    std::optional<uint64_t> address_index(const Ipv4Address& address) const;

    std::vector<Ipv4Prefix> prefixes_;
    std::vector<uint64_t> first_address_;  // address index of each prefix's first address
    uint64_t address_count_ = 0;
    uint32_t blocks_per_address_;
    uint16_t first_port_;
    uint32_t block_size_;
};

struct SubscriberMapping {
    uint64_t index = 0;
    Ipv6Prefix subscriber;
    Ipv4Prefix internal;
    PortBlock block;
};

// RFC 7422 deterministic allocation: subscriber i <-> block i, both ways, from the configuration
// alone. Construction requires count() <= blocks (the validator guarantees it).
class DeterministicMap {
  public:
    explicit DeterministicMap(const Nat64Config& config);

    uint64_t count() const { return subscribers_.count(); }
    SubscriberMapping mapping(uint64_t index) const;
    std::optional<SubscriberMapping> for_subscriber(const Ipv6Address& address) const;
    // Tracing: who used public ADDRESS:PORT.
    std::optional<SubscriberMapping> trace(const Ipv4Address& address, uint16_t port) const;

    const SubscriberSpace& subscribers() const { return subscribers_; }
    const BlockSpace& blocks() const { return blocks_; }

  private:
    SubscriberSpace subscribers_;
    BlockSpace blocks_;
};

// One block handed to one subscriber. Times are seconds on the caller's clock (the store will
// keep wall-clock times; the allocator only compares them).
struct Lease {
    uint64_t subscriber = 0;
    uint64_t block = 0;
    int64_t last_used = 0;
    auto operator<=>(const Lease&) const = default;
};

// Everything the dynamic allocator knows, as plain data a store can save and give back.
struct DynamicState {
    std::vector<Lease> leases;  // ordered by block
    bool operator==(const DynamicState&) const = default;
};

// Dynamic bulk port allocation: the lowest free block on a subscriber's first packet, returned
// after idle_timeout without use. O(log n) per operation.
class DynamicAllocator {
  public:
    DynamicAllocator(uint64_t block_count, int64_t idle_timeout_seconds,
                     const DynamicState& restored = {});

    // The subscriber's block, leasing the lowest free one if it has none; nullopt when every
    // block is leased (the caller counts it and logs it once).
    std::optional<uint64_t> acquire(uint64_t subscriber, int64_t now);
    // Marks the subscriber's lease as used at NOW; false when it has none.
    bool touch(uint64_t subscriber, int64_t now);
    bool release(uint64_t subscriber);
    // Releases every lease unused for idle_timeout or longer, and returns them (for the log).
    std::vector<Lease> expire(int64_t now);
    std::optional<Lease> lease_of(uint64_t subscriber) const;

    uint64_t leased() const { return leases_.size(); }
    uint64_t free() const { return block_count_ - leases_.size(); }
    DynamicState state() const;

  private:
    void free_block(uint64_t block);

    uint64_t block_count_;
    int64_t idle_timeout_;
    std::unordered_map<uint64_t, Lease> leases_;  // by subscriber
    // Free blocks are those at or above next_unused_ plus those in released_, so the lowest free
    // block is found without a scan and without a set of every block.
    uint64_t next_unused_ = 0;
    std::set<uint64_t> released_;
};

}  // namespace xlat64
