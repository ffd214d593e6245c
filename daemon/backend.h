// The kernel-programming side of xlat64d behind one interface (DESIGN "Later backends"): the BPF
// translator on a tun device is the first implementation; a native kernel SIIT device could be
// another without touching config, reconciler, control server or CLI.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/counter.h"
#include "daemon/plan.h"

namespace xlat64 {

class Nat64Ledger;
class Nat64Runtime;

class Backend {
  public:
    virtual ~Backend() = default;

    // Reads the kernel state the reconciler compares with WANT (which names the objects to look
    // at, e.g. the nftables table).
    virtual ObservedState observe(const DesiredState& want) = 0;
    // Carries out one planned change; throws with context on failure.
    virtual void apply(const Change& change) = 0;
    // Carries out a run of EAM additions or removals (CHANGES all AddEam, or all RemoveEam) at
    // once: a large table in a few system calls instead of several per entry. On failure none of
    // them is applied (throws).
    virtual void apply_eams(std::span<const Change> changes) = 0;
    // Waits for what apply() left running in the background (a new nftables table's blocks map
    // filled on another thread, change::SetNatBlocks) and throws, naming that change, if it
    // failed. The reconciler calls it when a plan ends, so that a plan's errors are reported as
    // that plan's and nothing of it still runs when the kernel is read again.
    virtual void finish_pending_changes() = 0;

    virtual std::vector<Counter> counters() = 0;
    // What the ingress fast path did (translation.ingress_interfaces); these packets are in
    // counters() too.
    virtual std::vector<Counter> ingress_counters() = 0;
    // The backend's part of "xlat64ctl status": device, program, pool6, eamt_entries, routes...
    virtual nlohmann::json status() = 0;
    // Each of CONFIGURED (translation.ingress_interfaces) as it is now: attached (program id),
    // missing, not attached, or the problem that keeps the fast path off it; with NAT_TABLE
    // (stateful NAT64's nftables table), whether that table trusts its internal sources.
    virtual nlohmann::json ingress_status(const std::vector<std::string>& configured,
                                          const std::optional<std::string>& nat_table) = 0;

    // The run-time side of stateful NAT64 (allocation events, expiry, queries) for the ledger's
    // configuration, or nullptr when this backend has none.
    virtual std::unique_ptr<Nat64Runtime> nat64_runtime(Nat64Ledger& ledger) = 0;
};

}  // namespace xlat64
