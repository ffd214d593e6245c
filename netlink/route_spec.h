// A route into the xlat64 device as xlat64d wants it, free of libnl types so the reconciler's
// planning stays pure (and unit-testable).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <variant>

#include "config/ip_address.h"

namespace xlat64 {

// rtm_protocol of every route xlat64d installs. Our own protocol number lets us dump and delete
// exactly our routes, next to whatever the router's other daemons (BGP, OSPF, DHCP) install;
// 64 is unassigned in rtnetlink.h and /etc/iproute2/rt_protos.
inline constexpr uint8_t RTPROT_XLAT64 = 64;

using RoutePrefix = std::variant<Ipv4Prefix, Ipv6Prefix>;

struct RouteSpec {
    RoutePrefix destination;
    uint32_t mtu = 0;  // RTAX_MTU metric; 0: none (the route follows the device MTU)
    auto operator<=>(const RouteSpec&) const = default;
};

inline std::string to_string(const RoutePrefix& prefix) {
    return std::visit([](const auto& p) { return to_string(p); }, prefix);
}

inline std::string to_string(const RouteSpec& route) {
    std::string text = to_string(route.destination);
    if (route.mtu != 0) {
        text += " mtu " + std::to_string(route.mtu);
    }
    return text;
}

}  // namespace xlat64
