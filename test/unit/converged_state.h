// The kernel exactly as a configuration wants it: the starting point of the plan tests.
#pragma once

#include "daemon/plan.h"

namespace xlat64_test {

inline xlat64::ObservedState converged(const xlat64::Config& config) {
    const xlat64::DesiredState want = xlat64::desired_state(config);
    xlat64::ObservedState have;
    have.device = xlat64::DeviceState{7, want.mtu, true, true, true};
    have.routes = want.routes;
    have.pool6 = want.pool6;
    have.translation = want.translation;
    have.eamt = want.eamt;
    have.program_current = true;
    have.attached_program_id = 42;
    return have;
}

}  // namespace xlat64_test
