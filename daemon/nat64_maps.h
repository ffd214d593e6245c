// The daemon's side of the stateful NAT64 maps (xlat64_abi.h, "NAT64 host mapping"): the admitted
// prefixes it writes, the hosts and dynamic blocks the data path hands out and it reads, expires
// and releases, and the queue of free blocks it fills. The maps belong to the BpfTranslator; this
// class only borrows their fds, so it must not outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "daemon/bpf_translator.h"
#include "daemon/nat64_layout.h"

namespace xlat64 {

struct Nat64Lease {
    Ipv6Prefix subscriber;
    uint32_t block = 0;
    uint64_t allocated_ns = 0;  // CLOCK_MONOTONIC
};

struct Nat64Host {
    Ipv6Address host{};
    Ipv4Address internal{};
    uint32_t block = 0;
    uint64_t last_seen_ns = 0;  // CLOCK_MONOTONIC
};

class Nat64Maps {
  public:
    Nat64Maps(const Nat64MapFds& fds, uint8_t subscriber_len)
        : fds_(fds), sub_len_(subscriber_len) {}

    std::vector<Nat64PrefixEntry> prefixes() const;
    // The admitted-prefix trie becomes exactly WANT (entries missing from it removed first).
    void set_prefixes(const std::vector<Nat64PrefixEntry>& want);

    // Forgets every host and dynamic block, and empties the free queue: after a layout change
    // none of them means what it meant.
    void flush();
    void push_free_blocks(const std::vector<uint32_t>& blocks);

    std::vector<Nat64Lease> leases() const;
    std::optional<Nat64Lease> lease(const Ipv6Prefix& subscriber) const;
    std::vector<Nat64Host> hosts() const;
    // The hosts holding an address of internal block INTERNAL (a probe of its addresses).
    std::vector<Nat64Host> hosts_in(const Ipv4Prefix& internal) const;

    // The subscriber holding dynamic block BLOCK.
    std::optional<Ipv6Prefix> owner_of(uint32_t block) const;
    // Every claimed block and its owner.
    std::vector<std::pair<uint32_t, Ipv6Prefix>> owners() const;

    // The daemon handing out a block itself (a provisioned subscriber, or a restore): the same
    // steps as the data path, so both can never hand one block out twice.
    // Takes the next block from the free queue (nullopt: empty).
    std::optional<uint32_t> pop_free_block();
    // Marks BLOCK as SUBSCRIBER's; false when someone holds it already.
    bool claim_block(uint32_t block, const Ipv6Prefix& subscriber);
    // SUBSCRIBER resolves to BLOCK from now on (after claim_block).
    void set_lease(const Ipv6Prefix& subscriber, uint32_t block, uint64_t allocated_ns);
    // The same, unless SUBSCRIBER has a lease already (the data path may have just given it
    // one): then false and nothing changes.
    bool add_lease(const Ipv6Prefix& subscriber, uint32_t block, uint64_t allocated_ns);
    // Claims and leases every (subscriber, block) in batches, right after flush() (a reboot's
    // restore): see nat64_maps.cpp for why batches are safe only then.
    void restore_leases(const std::vector<std::pair<Ipv6Prefix, uint32_t>>& leases,
                        uint64_t allocated_ns);

    void remove_host(const Nat64Host& host);
    // Step one of returning a block: the subscriber stops resolving to it.
    void forget_lease(const Ipv6Prefix& subscriber);
    // Step two, once no program can still be using the old lease: the block is free again.
    void free_block(uint32_t block);

    int events_fd() const { return fds_.events; }
    // The size of the events ring buffer in bytes.
    uint64_t events_capacity() const;

  private:
    Nat64MapFds fds_;
    uint8_t sub_len_;
};

}  // namespace xlat64
