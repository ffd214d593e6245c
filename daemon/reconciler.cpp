#include "daemon/reconciler.h"

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

}  // namespace

Plan Reconciler::plan(const Config& config, const std::vector<RestoredLease>& leases) {
    DesiredState want = desired_state(config);
    want.nat64_leases = leases;
    return compute_plan(want, backend_.observe(want));
}

void Reconciler::apply(const Plan& plan) {
    for (const Change& change : plan) {
        try {
            backend_.apply(change);
        } catch (const std::exception& e) {
            throw std::runtime_error("reconcile: " + describe(change) + " failed: " + e.what());
        }
    }
}

Plan Reconciler::reconcile(const Config& config, const std::vector<RestoredLease>& leases) {
    Plan plan = this->plan(config, leases);
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
