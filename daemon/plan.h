// What the kernel should hold (DesiredState, from the Config), what it holds (ObservedState, from
// a Backend), and the ordered list of changes between the two. Pure and header-only: no kernel
// access here, so the planning rules are unit-tested directly (test/unit/test_reconcile_plan.cpp).
#pragma once

#include <algorithm>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "config/config.h"
#include "netlink/route_spec.h"
#include "netlink/tun_device.h"

namespace xlat64 {

// IPv4 routes into the device get this much less MTU than min(device MTU, lowest_ipv6_mtu): an
// IPv4 packet grows by 20 bytes into IPv6, and a fragment by 8 more for its Fragment header (RFC
// 7915 section 4). The kernel then does the rest before the translator sees the packet: DF-set
// packets that do not fit get Fragmentation Needed with this MTU (path MTU discovery), DF-clear
// ones are fragmented to it, so that every translation fits the lowest IPv6 MTU, as RFC 7915
// section 4 requires, without the translator ever having to emit two packets for one.
inline constexpr uint32_t kIpv6HeaderGrowth = 28;

// The MTU of the IPv4 routes into the device.
inline uint32_t ipv4_route_mtu(uint32_t device_mtu, uint32_t lowest_ipv6_mtu) {
    uint32_t mtu = std::min(device_mtu, lowest_ipv6_mtu);
    return mtu > kIpv6HeaderGrowth ? mtu - kIpv6HeaderGrowth : 0;
}

struct DesiredState {
    std::string device_name;
    uint32_t mtu = 0;
    std::optional<Ipv6Prefix> pool6;
    std::vector<EamEntry> eamt;     // sorted
    std::vector<RouteSpec> routes;  // sorted
    TranslationConfig translation;
};

struct ObservedState {
    std::optional<DeviceState> device;  // nullopt: no device of the configured name
    std::vector<RouteSpec> routes;      // our routes via the device, sorted
    std::optional<Ipv6Prefix> pool6;
    std::vector<EamEntry> eamt;  // sorted
    // The translation options the program reads; nullopt: never written (the program drops
    // everything as not_configured until they are).
    std::optional<TranslationConfig> translation;
    // The attached program is the one this daemon would attach (equal tags): keep it.
    bool program_current = false;
    std::optional<uint32_t> attached_program_id;
};

namespace change {
struct CreateDevice {
    std::string name;
    uint32_t mtu;
};
struct SetDeviceMtu {
    std::string name;
    uint32_t from;
    uint32_t to;
};
struct DisableAddrGen {
    std::string name;
};
struct SetDeviceUp {
    std::string name;
};
struct RemoveRoute {
    RouteSpec route;
};
struct RemoveEam {
    EamEntry entry;
};
// SetPool6 and SetTranslation both carry the whole desired settings (pool6 and translation),
// which the backend writes as one unit (one atomic flip, see BpfTranslator::set_settings). When
// both differ, both are planned and the same settings are written twice: harmless, and the log
// says which part changed. One SetSettings change would save the second write.
struct SetPool6 {
    std::optional<Ipv6Prefix> from;
    std::optional<Ipv6Prefix> to;
    TranslationConfig translation;
};
struct SetTranslation {
    std::optional<TranslationConfig> from;
    TranslationConfig to;
    std::optional<Ipv6Prefix> pool6;
};
struct AddEam {
    EamEntry entry;
};
struct AttachProgram {
    std::optional<uint32_t> replaces_id;
};
struct AddRoute {
    RouteSpec route;
};
}  // namespace change

using Change =
    std::variant<change::CreateDevice, change::SetDeviceMtu, change::DisableAddrGen,
                 change::SetDeviceUp, change::RemoveRoute, change::RemoveEam, change::SetPool6,
                 change::SetTranslation, change::AddEam, change::AttachProgram, change::AddRoute>;
using Plan = std::vector<Change>;

inline std::string to_string(const EamEntry& entry) {
    return to_string(entry.ipv4) + " <-> " + to_string(entry.ipv6);
}

inline DesiredState desired_state(const Config& config) {
    DesiredState want;
    want.device_name = config.device.name;
    want.mtu = config.device.mtu;
    want.pool6 = config.pool6;
    want.eamt = config.eamt;
    want.translation = config.translation;
    std::sort(want.eamt.begin(), want.eamt.end());
    // Only destinations that need translation go into the device: pool6 and the EAM IPv4
    // prefixes. The EAM IPv6 prefixes are real IPv6 hosts, reached natively; routing them into
    // xlat64 (a literal reading of DESIGN.md) would blackhole their IPv6 traffic.
    if (want.pool6) {
        want.routes.push_back(RouteSpec{*want.pool6, 0});
    }
    const uint32_t ipv4_mtu = ipv4_route_mtu(want.mtu, want.translation.lowest_ipv6_mtu);
    for (const EamEntry& entry : want.eamt) {
        want.routes.push_back(RouteSpec{entry.ipv4, ipv4_mtu});
    }
    std::sort(want.routes.begin(), want.routes.end());
    want.routes.erase(std::unique(want.routes.begin(), want.routes.end()), want.routes.end());
    return want;
}

namespace plan_detail {

// Elements of sorted `a` missing from sorted `b`.
template <typename T>
std::vector<T> missing_from(const std::vector<T>& a, const std::vector<T>& b) {
    std::vector<T> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

inline void plan_device(const DesiredState& want, const ObservedState& have, Plan& plan) {
    if (!have.device) {
        plan.push_back(change::CreateDevice{want.device_name, want.mtu});
        return;
    }
    if (!have.device->managed) {
        throw std::runtime_error(not_managed_message(want.device_name));
    }
    if (have.device->mtu != want.mtu) {
        plan.push_back(change::SetDeviceMtu{want.device_name, have.device->mtu, want.mtu});
    }
    if (!have.device->addr_gen_none) {
        plan.push_back(change::DisableAddrGen{want.device_name});
    }
    if (!have.device->up) {
        plan.push_back(change::SetDeviceUp{want.device_name});
    }
}

}  // namespace plan_detail

// The order is the safety argument: the device first; then removals, routes before map entries,
// so no traffic enters for a mapping that is going away; then map additions and the program;
// routes last, so traffic only enters once the translator is ready for it. A changed route (new
// MTU) is removed and re-added rather than replaced: NLM_F_REPLACE picks the first route with the
// same prefix and metric, which may belong to someone else. Throws when a device of the
// configured name exists and is not ours.
inline Plan compute_plan(const DesiredState& want, const ObservedState& have) {
    using plan_detail::missing_from;
    Plan plan;
    plan_detail::plan_device(want, have, plan);
    for (const RouteSpec& route : missing_from(have.routes, want.routes)) {
        plan.push_back(change::RemoveRoute{route});
    }
    for (const EamEntry& entry : missing_from(have.eamt, want.eamt)) {
        plan.push_back(change::RemoveEam{entry});
    }
    if (have.pool6 != want.pool6) {
        plan.push_back(change::SetPool6{have.pool6, want.pool6, want.translation});
    }
    if (have.translation != want.translation) {
        plan.push_back(change::SetTranslation{have.translation, want.translation, want.pool6});
    }
    for (const EamEntry& entry : missing_from(want.eamt, have.eamt)) {
        plan.push_back(change::AddEam{entry});
    }
    if (!have.program_current) {
        plan.push_back(change::AttachProgram{have.attached_program_id});
    }
    for (const RouteSpec& route : missing_from(want.routes, have.routes)) {
        plan.push_back(change::AddRoute{route});
    }
    return plan;
}

namespace plan_detail {

inline std::string describe_pool6(const change::SetPool6& c) {
    if (!c.to) {
        return "clear pool6 (was " + to_string(*c.from) + ")";
    }
    if (!c.from) {
        return "set pool6 " + to_string(*c.to);
    }
    return "change pool6 " + to_string(*c.from) + " -> " + to_string(*c.to);
}

inline std::string describe_translation(const TranslationConfig& t) {
    std::string out = "lowest_ipv6_mtu " + std::to_string(t.lowest_ipv6_mtu);
    out += ", udp_zero_checksum ";
    out += t.drop_udp_zero_checksum ? "drop" : "compute";
    out += ", traffic_class " + (t.traffic_class ? std::to_string(*t.traffic_class) : "copy");
    out += std::string(", allow_wkp_non_global ") + (t.allow_wkp_non_global ? "true" : "false");
    if (t.ipv4_address) {
        out += ", ipv4_address " + to_string(*t.ipv4_address);
    }
    if (t.ipv6_address) {
        out += ", ipv6_address " + to_string(*t.ipv6_address);
    }
    if (t.rfc6791_pool4) {
        out += ", rfc6791_pool4 " + to_string(*t.rfc6791_pool4);
    }
    if (t.rfc6791_pool6) {
        out += ", rfc6791_pool6 " + to_string(*t.rfc6791_pool6);
    }
    return out;
}

inline std::string describe_attach(const change::AttachProgram& c) {
    if (c.replaces_id) {
        return "replace attached program id " + std::to_string(*c.replaces_id) +
               " with the translator of this build";
    }
    return "attach the translator program to tc egress";
}

}  // namespace plan_detail

inline std::string describe(const Change& c) {
    struct Describer {
        std::string operator()(const change::CreateDevice& c) const {
            return "create device " + c.name + " (mtu " + std::to_string(c.mtu) + ")";
        }
        std::string operator()(const change::SetDeviceMtu& c) const {
            return "set mtu of " + c.name + " " + std::to_string(c.from) + " -> " +
                   std::to_string(c.to);
        }
        std::string operator()(const change::DisableAddrGen& c) const {
            return "set addr_gen_mode none on " + c.name;
        }
        std::string operator()(const change::SetDeviceUp& c) const { return "bring up " + c.name; }
        std::string operator()(const change::RemoveRoute& c) const {
            return "remove route " + to_string(c.route);
        }
        std::string operator()(const change::RemoveEam& c) const {
            return "remove EAM " + to_string(c.entry);
        }
        std::string operator()(const change::SetPool6& c) const {
            return plan_detail::describe_pool6(c);
        }
        std::string operator()(const change::SetTranslation& c) const {
            return "set translation options: " + plan_detail::describe_translation(c.to);
        }
        std::string operator()(const change::AddEam& c) const {
            return "add EAM " + to_string(c.entry);
        }
        std::string operator()(const change::AttachProgram& c) const {
            return plan_detail::describe_attach(c);
        }
        std::string operator()(const change::AddRoute& c) const {
            return "add route " + to_string(c.route);
        }
    };
    return std::visit(Describer{}, c);
}

}  // namespace xlat64
