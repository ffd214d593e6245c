// The run-time side of stateful NAT64 in xlat64d: hears the data path's allocations (ring buffer),
// logs each block handed out and returned, expires idle hosts and dynamic blocks that conntrack no
// longer uses, logs exhaustion once, and answers `xlat64ctl pool` and `xlat64ctl subscriber`.
// The reconciler builds the NAT64 state; this class only changes what the data path handed out.
#pragma once

#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/nat64_config.h"
#include "daemon/counter.h"
#include "daemon/nat64_ledger.h"
#include "daemon/nat64_maps.h"
#include "daemon/port_blocks.h"
#include "daemon/subscriber_import.h"
#include "netlink/conntrack.h"
#include "netlink/nft_nat_table.h"

struct ring_buffer;

namespace xlat64 {

class Nat64Runtime {
  public:
    // DEVICE: the translator's device, which the table trusts by name (its spoofed-source rule
    // names it, and the run-time reads that rule's counter).
    Nat64Runtime(Nat64Ledger& ledger, Nat64Maps maps, NftSocket& nft, std::string device);
    ~Nat64Runtime();
    Nat64Runtime(const Nat64Runtime&) = delete;
    Nat64Runtime& operator=(const Nat64Runtime&) = delete;

    // Readable when the data path has reported allocations; then call drain_events().
    int events_fd() const;
    void drain_events();
    // Once a second: expiry (at its own pace) and exhaustion logging.
    void tick();
    // After start-up: the kernel's dynamic leases and the store's open allocations OPEN (read
    // for the reconcile just before: Nat64Ledger::restorable_leases) agree afterwards (a lease the
    // daemon did not record is recorded; an allocation the kernel lost is re-created, or closed
    // when its block went to someone else). RESTORED_NS: the reconcile has just emptied the maps
    // and re-created every restorable allocation in them with this lease time (a reboot), so
    // only the leases the data path made since need looking at.
    void sync_with_store(const std::vector<Allocation>& open,
                         std::optional<uint64_t> restored_ns = std::nullopt);

    // xlat64ctl subscriber add / del: provisioning from dial-up systems.
    nlohmann::json add_subscriber(const std::string& prefix, const std::string& account);
    // xlat64ctl subscriber import: one chunk of the file (subscriber_import.h's format). With
    // CHECK only what is wrong with it (and, on request, the free blocks and how many of its
    // subscribers hold none); else provisioned all or nothing (see import_chunk). PIPELINED (a
    // chunk with more to follow): answered once committed, while its leases are still being
    // added; the next call waits for them (and tells what went wrong with them).
    struct ImportRequest {
        std::string text;
        bool check = false;
        bool count_free = false;
        bool count_unleased = false;
        bool pipelined = false;
    };
    nlohmann::json import_subscribers(const ImportRequest& request);
    nlohmann::json remove_subscriber(const std::string& prefix);
    nlohmann::json trace(const std::string& address_port, std::optional<int64_t> at);

    nlohmann::json pool();
    // The NAT64 table's drops of spoofed internal sources, as a counter for xlat64ctl stats
    // (where the operator looks for what xlat64 dropped); nullopt, logged, when the table cannot
    // be read: the program's counters matter more than this one.
    std::optional<Counter> spoofed_source_counter();
    nlohmann::json subscribers();
    // The subscriber owning PREFIX_OR_ADDRESS (a subscriber prefix, or any address inside one).
    nlohmann::json subscriber(const std::string& prefix_or_address);

    // Public.
    void on_event(const void* data, size_t size);

  private:
    using Owner = Nat64Owner;
    // True when it returned as many idle blocks as one pass may (more may be waiting).
    bool expire(uint64_t now_ns);
    void record_pending();
    void record_unrestored_leases(uint64_t restored_ns);
    void recreate_lost_leases(const std::vector<Allocation>& lost, std::vector<Nat64Lease>& leases);
    void return_orphaned_blocks(const std::vector<Nat64Lease>& leases);
    std::vector<int64_t> leases_by_block(const std::vector<Nat64Lease>& leases) const;
    Ipv6Prefix subscriber_prefix(const std::string& text);
    std::string admission_problem(const Ipv6Prefix& prefix) const;
    std::optional<uint32_t> lease_block_now(const Ipv6Prefix& subscriber);
    ParsedImport admitted(const std::string& text, size_t max_shown) const;
    nlohmann::json check_chunk(const ImportRequest& request);
    nlohmann::json import_chunk(const std::vector<Subscriber>& subscribers, bool pipelined);
    // The kernel side of an import chunk; runs on a second thread, so it touches the maps only,
    // and hands its claims over in batches through a ClaimStream (nat64_runtime.cpp).
    class ClaimStream;
    struct ChunkClaims {
        size_t already_leased = 0;
        Nat64Ledger::Leases blocks;  // (index into the chunk, block) claimed, not yet leased
        std::vector<std::string> log_lines;  // their allocate lines, a batch per write
    };
    // What add_leases did: LEASES[0, done) are leased or superseded; on ERROR the rest are
    // claimed and committed but not leased.
    struct LeaseOutcome {
        size_t done = 0;
        std::vector<Owner> superseded;
        std::exception_ptr error;
    };
    // A chunk's leases being added on a second thread (the next chunk's claimer waits for them).
    struct Leasing {
        std::vector<Owner> leases;  // claimed and committed
        std::shared_future<LeaseOutcome> outcome;
    };
    ChunkClaims claim_blocks(const std::vector<Subscriber>& subscribers, int64_t from,
                             ClaimStream& stream, const std::shared_future<LeaseOutcome>& before);
    LeaseOutcome add_leases(const std::vector<Owner>& leases);
    std::vector<Store::SubscriberChange> record_chunk(const std::vector<Subscriber>& subscribers,
                                                      ChunkClaims& claims);
    size_t lease_chunk(const std::vector<Subscriber>& subscribers, const ChunkClaims& claims,
                       bool pipelined);
    // The last chunk's leases, once added (at once when WAIT, else only if they are): blocks it
    // could not use are returned. Returns how many were superseded; throws what failed.
    size_t settle_leases(bool wait = true);
    void return_unused(const std::vector<Nat64Ledger::Release>& blocks);
    void give_back(const Nat64Ledger::Leases& blocks);
    void finish_releases();
    // The first half of returning idle blocks: closed in the store (one commit), then forgotten.
    // False when the store refused (logged; they stay leased).
    bool release_idle(const std::vector<Nat64Ledger::Release>& releases);
    void log_exhaustion();
    std::string describe_block(uint32_t block) const;
    std::vector<Owner> owners(const std::vector<Nat64Host>& hosts);
    nlohmann::json subscriber_json(const Owner& owner, const std::vector<Nat64Host>& hosts,
                                   const std::map<Ipv4Address, ConntrackCounts>& counts);

    Nat64Ledger& ledger_;
    Nat64Config config_;
    NatBlockLayout layout_;
    Nat64Maps maps_;
    NftNatTable table_;
    SubscriberSpace subscribers_;
    BlockSpace blocks_;
    Conntrack conntrack_;
    struct RingDeleter {
        void operator()(ring_buffer* rb) const;
    };
    std::unique_ptr<ring_buffer, RingDeleter> ring_;
    uint64_t next_expiry_ns_ = 0;
    uint64_t next_prune_ns_ = 0;
    // Blocks whose lease was forgotten in the last expiry pass: freed in the next one, when no
    // program run can still hold the old lease.
    std::vector<Owner> releasing_;
    // Allocations the data path made that the store could not record yet (disk full): retried.
    struct Pending {
        Owner owner;
        int64_t from = 0;
    };
    std::vector<Pending> pending_;
    // Logged once until they recover.
    std::set<std::pair<Ipv4Prefix, uint8_t>> exhausted_logged_;
    std::set<Ipv6Address> no_block_logged_;
    std::set<Ipv6Address> no_host_slot_logged_;
    // Bytes of events read from the ring buffer so far: while they are fewer than it holds, the
    // data path cannot have found it full (and dropped an event) since this run-time started.
    uint64_t event_bytes_ = 0;
    // Last: its thread uses the members above.
    std::unique_ptr<Leasing> leasing_;
};

}  // namespace xlat64
