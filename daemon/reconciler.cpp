#include "daemon/reconciler.h"

#include <chrono>
#include <stdexcept>

#include "daemon/log.h"

namespace xlat64 {
namespace {

// Beyond this many, changes are summarised: a million-entry EAMT must not produce a million
// log lines.
constexpr size_t kLoggedChanges = 100;

void log_plan(const Plan& plan) {
    log_info("reconcile: " + std::to_string(plan.size()) +
             (plan.size() == 1 ? " change" : " changes"));
    for (size_t i = 0; i < plan.size() && i < kLoggedChanges; ++i) {
        log_info("reconcile: " + describe(plan[i]));
    }
    if (plan.size() > kLoggedChanges) {
        log_info("reconcile: ... and " + std::to_string(plan.size() - kLoggedChanges) +
                 " more changes");
    }
}

// EAM additions and removals go to the backend in runs: a million-entry table is programmed
// with batched map updates.
bool is_eam_change(const Change& change) {
    return std::holds_alternative<change::AddEam>(change) ||
           std::holds_alternative<change::RemoveEam>(change);
}

}  // namespace

Plan Reconciler::plan(const Config& config, const std::vector<RestoredLease>& leases,
                      bool log_warnings) {
    DesiredState want = desired_state(config);
    want.nat64_leases = leases;
    // steady_clock is CLOCK_MONOTONIC, the data path's clock: the run-time tells the restored
    // leases from the data path's later ones by this stamp.
    want.nat64_leased_ns =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now().time_since_epoch())
                                  .count());
    const ObservedState have = backend_.observe(want);
    if (log_warnings) {
        for (const std::string& warning : ingress_warnings(want, have)) {
            log_warning(warning);
        }
    }
    return compute_plan(want, have);
}

Plan Reconciler::plan(const Config& config, const std::vector<RestoredLease>& leases) {
    return plan(config, leases, false);
}

void Reconciler::apply(const Plan& plan) {
    try {
        apply_changes(plan);
    } catch (...) {
        finish_after_failure();
        throw;
    }
    try {
        backend_.finish_pending_changes();
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("reconcile: ") + e.what());
    }
}

// The caller rolls back next, and its first observe() would rethrow what still ran in the
// background: it ends here instead. Its error is logged, not thrown, so that the error reported
// stays the change that failed first and the rollback can run.
void Reconciler::finish_after_failure() {
    try {
        backend_.finish_pending_changes();
    } catch (const std::exception& e) {
        log_error(std::string("reconcile: ") + e.what() + " (after an earlier change failed)");
    }
}

void Reconciler::apply_changes(const Plan& plan) {
    for (size_t i = 0; i < plan.size();) {
        size_t end = i + 1;
        if (is_eam_change(plan[i])) {
            while (end < plan.size() && plan[end].index() == plan[i].index()) {
                ++end;
            }
        }
        try {
            if (end - i == 1) {
                backend_.apply(plan[i]);
            } else {
                backend_.apply_eams(std::span<const Change>(plan).subspan(i, end - i));
            }
        } catch (const std::exception& e) {
            const std::string what =
                end - i == 1
                    ? describe(plan[i])
                    : describe(plan[i]) + " and " + std::to_string(end - i - 1) + " more like it";
            throw std::runtime_error("reconcile: " + what + " failed: " + e.what());
        }
        i = end;
    }
}

Plan Reconciler::reconcile(const Config& config, const std::vector<RestoredLease>& leases) {
    // Warnings once per reconcile, not again from the verification below.
    Plan plan = this->plan(config, leases, true);
    log_plan(plan);
    if (plan.empty()) {
        return plan;
    }
    apply(plan);
    Plan left = this->plan(config, leases);
    if (!left.empty()) {
        throw std::runtime_error("reconcile: the kernel still differs after applying the plan (" +
                                 std::to_string(left.size()) +
                                 " changes left, first: " + describe(left.front()) + ")");
    }
    return plan;
}

}  // namespace xlat64
