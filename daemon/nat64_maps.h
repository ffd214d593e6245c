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

// A block and the subscriber it is for.
struct Nat64Owner {
    Ipv6Prefix subscriber;
    uint32_t block = 0;
};

// What claim_blocks did for one subscriber.
struct Nat64Claim {
    enum class Kind { claimed, has_lease, pool_empty };
    Kind kind = Kind::claimed;
    uint32_t block = 0;  // claimed
};

// How far add_leases got: LEASES[0, done) are leased, except those listed as superseded (their
// subscriber held a lease already).
struct Nat64LeaseProgress {
    size_t done = 0;
    std::vector<size_t> superseded;
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
    // An import's bulk forms of the steps above, through the program xlat64_n64_batch (one bpf()
    // call per XLAT64_N64_BATCH_MAX subscribers) when the translator has it: the same map
    // operations with the same BPF_NOEXIST tests. Each takes one thread's slot of the batch map,
    // so at most one call of each may run at a time.
    // For each of SUBSCRIBERS in order: has_lease, or a free block below BLOCK_COUNT claimed for
    // it (pop_free_block, claim_block). Ends with the first subscriber the pool has no block for
    // (pool_empty).
    std::vector<Nat64Claim> claim_blocks(const std::vector<Ipv6Prefix>& subscribers,
                                         uint32_t block_count);
    // add_lease for each of LEASES in order. Throws at the first failure; PROGRESS says how far
    // it got.
    void add_leases(const std::vector<Nat64Owner>& leases, uint64_t allocated_ns,
                    Nat64LeaseProgress& progress);
    // Claims and leases every (subscriber, block) in batches, right after flush() (a reboot's
    // restore): see nat64_maps.cpp for why batches are safe only then.
    void restore_leases(const std::vector<std::pair<Ipv6Prefix, uint32_t>>& leases,
                        uint64_t allocated_ns);

    void remove_host(const Nat64Host& host);
    // Step one of returning a block: the subscriber stops resolving to it.
    void forget_lease(const Ipv6Prefix& subscriber);
    // Step two, once no program can still be using the old lease: the block is free again.
    void free_block(uint32_t block);
    // One subscriber's block: popped from the free queue and claimed in the owner map, past every
    // stale (>= BLOCK_COUNT) or already owned entry, which the owner map decides as for the data
    // path (which tries only a few: a program's loop is bounded). nullopt when the queue ran dry.
    std::optional<uint32_t> claim_free_block(const Ipv6Prefix& subscriber, uint32_t block_count);

    int events_fd() const { return fds_.events; }
    // The size of the events ring buffer in bytes.
    uint64_t events_capacity() const;

  private:
    bool has_batch_program() const { return fds_.batch >= 0 && fds_.batch_program >= 0; }
    // SUBSCRIBERS[first, first + count) through xlat64_n64_batch; false once the pool ran dry.
    bool claim_batch(const std::vector<Ipv6Prefix>& subscribers, size_t first, size_t count,
                     uint32_t block_count, std::vector<Nat64Claim>& out);
    void lease_batch(const std::vector<Nat64Owner>& leases, size_t count, uint64_t allocated_ns,
                     Nat64LeaseProgress& progress);

    Nat64MapFds fds_;
    uint8_t sub_len_;
};

}  // namespace xlat64
