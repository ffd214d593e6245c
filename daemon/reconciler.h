// The one place that decides what to change in the kernel: desired state from the Config,
// observed state from the Backend, the difference as an ordered Plan (plan.h), applied in order.
#pragma once

#include "config/config.h"
#include "daemon/backend.h"
#include "daemon/plan.h"

namespace xlat64 {

class Reconciler {
  public:
    explicit Reconciler(Backend& backend) : backend_(backend) {}

    // What reconcile() would change now; changes nothing. LEASES: the dynamic NAT64 leases the
    // store holds, re-created if the NAT64 state has to be rebuilt.
    Plan plan(const Config& config, const std::vector<RestoredLease>& leases = {});
    // Logs the plan, applies it, then re-observes to verify that nothing is left to do.
    // Returns the plan that was applied ("reconcile: 0 changes" when already converged).
    // Throws with the failed change in the message; changes before it stay applied.
    Plan reconcile(const Config& config, const std::vector<RestoredLease>& leases = {});

  private:
    // LOG_WARNINGS: log what the operator should know that plans no change (a configured ingress
    // interface that does not exist).
    Plan plan(const Config& config, const std::vector<RestoredLease>& leases, bool log_warnings);
    // Applies PLAN, then waits for what the backend still runs of it in the background (before
    // the verification, and before the caller's rollback when a change failed); throws with the
    // change that failed.
    void apply(const Plan& plan);
    void apply_changes(const Plan& plan);
    void finish_after_failure();

    Backend& backend_;
};

}  // namespace xlat64
