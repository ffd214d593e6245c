// The kernel exactly as a configuration wants it: the starting point of the plan tests.
#pragma once

#include <cstdint>
#include <string>

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

// An Ethernet interface as the backend finds it, without xlat64's ingress filter.
inline xlat64::IngressLink ethernet(const std::string& name, int ifindex) {
    xlat64::IngressLink link;
    link.name = name;
    link.ifindex = ifindex;
    link.link_type = "ether";
    link.l2_header_len = 14;
    return link;
}

// LINK with xlat64's ingress filter, program ID (this build's when CURRENT).
inline xlat64::IngressLink attached(xlat64::IngressLink link, uint32_t id, bool current = true) {
    link.attached_id = id;
    link.attached_current = current;
    return link;
}

}  // namespace xlat64_test
