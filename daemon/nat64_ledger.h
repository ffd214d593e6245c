// The record of who held which public address and port block when (issue 5): every dynamic
// allocation and release goes to the store (committed before the kernel hands the block to anyone
// else) and out as one log line; traces are answered from it. Deterministic mode records nothing
// per subscriber (RFC 7422): the configuration says it all, and the ledger keeps the history of
// configurations so that past traces use the one valid at the time.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "daemon/nat64_layout.h"
#include "daemon/plan.h"
#include "daemon/port_blocks.h"
#include "daemon/store.h"

namespace xlat64 {

// Unix seconds now, and the Unix time of a CLOCK_MONOTONIC instant (BPF timestamps).
int64_t wall_now();
int64_t wall_time_of_monotonic(uint64_t monotonic_ns);
std::string iso8601(int64_t unix_seconds);

class Nat64Ledger {
  public:
    Nat64Ledger(Store& store, Nat64Config config, const StateConfig& state);

    const Nat64Config& config() const { return config_; }
    Store& store() { return store_; }
    std::string account_of(const Ipv6Prefix& subscriber);

    // Records that SUBSCRIBER holds BLOCK since FROM (committed) and logs it. Throws StoreError.
    void allocated(const Ipv6Prefix& subscriber, uint32_t block, int64_t from,
                   const std::string& note = "");
    // The same for many (the data path's, from its events) in one transaction: one commit however
    // many, each logged once it is committed. Returns the indexes of those refused as conflicts
    // (the block or the subscriber already has an open allocation: a replayed event, or a block
    // an import is still leasing), which are neither recorded nor logged. Throws StoreError with
    // none recorded on any other error.
    struct Opening {
        Ipv6Prefix subscriber;
        uint32_t block = 0;
        int64_t from = 0;
    };
    std::vector<size_t> allocated(const std::vector<Opening>& openings);
    // Closes SUBSCRIBER's allocation of BLOCK at UNTIL (committed) and logs it. Throws StoreError.
    void released(const Ipv6Prefix& subscriber, uint32_t block, int64_t until, int64_t held_seconds,
                  const std::string& reason);

    // Closes RELEASES' allocations at UNTIL in one transaction (one commit, however many: idle
    // blocks found together, an import's blocks that were superseded or could not be leased),
    // and logs them. Throws StoreError with none closed.
    struct Release {
        Ipv6Prefix subscriber;
        uint32_t block = 0;
        const char* reason = "";  // for the log line
        int64_t held_seconds = 0;
    };
    void released(const std::vector<Release>& releases, int64_t until);

    // Bulk provisioning (xlat64ctl subscriber import): SUBSCRIBERS provisioned and their
    // allocations recorded, in one transaction and one commit. The allocations come in batches
    // from NEXT_ALLOCATIONS (false: no more) once the subscribers are written, so that the caller
    // can claim the blocks in the kernel meanwhile. Throws (StoreError, or what NEXT_ALLOCATIONS
    // throws) with nothing recorded.
    using Leases = std::vector<std::pair<size_t, uint32_t>>;  // (index into a chunk, block)
    std::vector<Store::SubscriberChange> import(
        const std::vector<Subscriber>& subscribers,
        const std::function<bool(std::vector<Allocation>&)>& next_allocations);
    // The allocation of an import: SUBSCRIBER holds BLOCK since FROM. Built once, on the
    // caller's kernel thread, for both the row and the allocate line. Thread-safe (reads the
    // configuration only), as is allocate_line.
    Allocation imported(const Subscriber& subscriber, uint32_t block, int64_t from) const;
    // Its allocate line, newline included; TIME is iso8601(allocation.valid_from). Written with
    // log_lines() once committed.
    std::string allocate_line(const Allocation& allocation, const std::string& time) const;
    // LINES (each ending in a newline) to the journal in one write, and to the allocation log.
    void log_lines(const std::string& lines);

    // An allocation means the same under this configuration as when it was made.
    bool matches_layout(const Allocation& allocation) const;
    // Every open allocation (dynamic mode; deterministic mode records none, so nothing is read),
    // and those that match the layout as leases to re-create after a reboot. Read once for a
    // start or a reload: the reconcile takes RESTORABLE, the run-time's first sync ALL.
    struct OpenAllocations {
        std::vector<Allocation> all;
        std::vector<RestoredLease> restorable;
    };
    OpenAllocations restorable_leases();
    // Closes the allocations of OPEN whose blocks mean something else now (matches_layout), in
    // one commit however many (a changed layout can leave a million), and logs them.
    void close_changed_by_configuration(const std::vector<Allocation>& open);

    // Keeps the history of nat64 configurations (for deterministic traces).
    void record_configuration();
    // Who held public ADDRESS:PORT at AT.
    nlohmann::json trace(const Ipv4Address& address, uint16_t port, int64_t at);
    // Drops history older than the retention.
    uint64_t prune();

  private:
    std::string line_of(const std::string& event, const Allocation& allocation,
                        const std::string& time, const std::string& extra) const;
    void log_line(const std::string& event, const Allocation& allocation, int64_t when,
                  const std::string& extra);
    Allocation allocation_of(const Ipv6Prefix& subscriber, uint32_t block);
    Allocation allocation_of(const Ipv6Prefix& subscriber, const std::string& account,
                             uint32_t block) const;

    Store& store_;
    Nat64Config config_;
    StateConfig state_;
    NatBlockLayout layout_;
    SubscriberSpace subscribers_;
    std::ofstream log_file_;
};

}  // namespace xlat64
