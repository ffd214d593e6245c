// What the kernel should hold (DesiredState, from the Config), what it holds (ObservedState, from
// a Backend), and the ordered list of changes between the two. Pure and header-only: no kernel
// access here, so the planning rules are unit-tested directly (test/unit/test_reconcile_plan.cpp).
#pragma once

#include <algorithm>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "config/config.h"
#include "daemon/bpf_translator.h"
#include "daemon/nat64_layout.h"
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

// A dynamic block the store says a subscriber holds: re-created when the kernel's NAT64 state is
// rebuilt (after a reboot), so every subscriber keeps its public address and port block.
struct RestoredLease {
    Ipv6Prefix subscriber;
    uint32_t block = 0;
    auto operator<=>(const RestoredLease&) const = default;
};

struct DesiredState {
    std::string device_name;
    uint32_t mtu = 0;
    std::optional<Ipv6Prefix> pool6;
    std::vector<EamEntry> eamt;     // sorted
    std::vector<RouteSpec> routes;  // sorted
    TranslationConfig translation;
    std::optional<Nat64Config> nat64;
    std::vector<RestoredLease> nat64_leases;  // from the store (dynamic mode)
    uint64_t nat64_leased_ns = 0;             // their lease time if re-created (CLOCK_MONOTONIC)
    // translation.ingress_interfaces, sorted: where the ingress fast path should be attached.
    // Which of them exist, and with which link-layer header, is observed (IngressLink).
    std::vector<std::string> ingress_interfaces;

    TranslatorSettings settings() const {
        return {pool6, translation,
                nat64 ? std::optional<Nat64Params>(nat64_params(*nat64)) : std::nullopt};
    }
};

// A configured ingress interface as the backend finds it (translation.ingress_interfaces).
struct IngressLink {
    std::string name;
    int ifindex = 0;
    std::string link_type;                  // "ether", "ppp", ... for messages
    std::optional<uint32_t> l2_header_len;  // nullopt: a link type the translator cannot read
    // Effective IPv4 rp_filter: max(conf/all, conf/NAME) (0 off, 1 strict, 2 loose).
    int rp_filter = 0;
    // Loose filtering accepts a source routed through another interface only when this one has
    // an IPv4 address (the kernel's fib_validate_source).
    bool has_ipv4_address = false;
    // What runs at xlat64's ingress handle and priority there.
    std::optional<uint32_t> attached_id;
    bool attached_current = false;  // the program this daemon would attach (equal tags)
    // A filter at our handle and priority that is not xlat64's (its program's name), never
    // replaced.
    std::optional<std::string> foreign_program;
};

// xlat64's ingress filter (by handle, priority and program name) found on an interface of the
// namespace, configured or not (a previous daemon's, or an interface taken out of the list).
struct IngressAttachment {
    int ifindex = 0;
    std::string ifname;
    uint32_t program_id = 0;
    auto operator<=>(const IngressAttachment&) const = default;
};

// xlat64's nftables table as the backend finds it. current: its sets, chains and rules are those
// this version builds for the configuration (the elements of trusted_ifaces are compared apart,
// ObservedState::nat_trusted_ifindexes); other_shape: anything else of ours (another pool, an
// earlier version), rebuilt.
enum class NatTableState { absent, current, other_shape, foreign };

// An ingress fast path interface the NAT64 table trusts internal sources from, by index (the
// name is for messages).
struct TrustedLink {
    int ifindex = 0;
    std::string name;
    auto operator<=>(const TrustedLink&) const = default;
};

struct ObservedState {
    std::optional<DeviceState> device;  // nullopt: no device of the configured name
    std::vector<RouteSpec> routes;      // our routes via the device, sorted
    std::optional<Ipv6Prefix> pool6;
    std::vector<EamEntry> eamt;  // sorted
    // The translation options the program reads; nullopt: never written (the program drops
    // everything as not_configured until they are).
    std::optional<TranslationConfig> translation;
    std::optional<Nat64Params> nat64;              // the NAT64 part of the live settings
    std::vector<Nat64PrefixEntry> nat64_prefixes;  // sorted
    NatTableState nat_table = NatTableState::absent;
    // The elements of the table's trusted_ifaces set (interface indexes), sorted; read when
    // nat_table is current.
    std::vector<uint32_t> nat_trusted_ifindexes;
    // The attached program is the one this daemon would attach (equal tags): keep it.
    bool program_current = false;
    std::optional<uint32_t> attached_program_id;
    // The configured ingress interfaces that exist (a missing one is simply absent).
    std::vector<IngressLink> ingress_links;
    // Every interface carrying xlat64's ingress filter now.
    std::vector<IngressAttachment> ingress_attached;
};

// A large part of a Change, shared rather than held by value: Change is a variant as large as its
// largest alternative, and the plan for a million-entry EAMT is a million of them.
template <typename T>
using Shared = std::shared_ptr<const T>;

template <typename T>
Shared<T> share(T value) {
    return std::make_shared<const T>(std::move(value));
}
template <typename T>
Shared<T> share(const std::optional<T>& value) {
    return value ? share(*value) : nullptr;
}

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
// The whole settings the program reads (pool6, translation options, NAT64 parameters), written as
// one unit with one atomic flip (BpfTranslator::set_settings).
struct SetSettings {
    Shared<TranslatorSettings> from;  // null: never written
    Shared<TranslatorSettings> to;
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
// Stateful NAT64 (daemon/nat64_layout.h). TRUSTED: the interfaces behind
// shape.trusted_ifindexes, for the description.
struct EnsureNatTable {
    std::string table;
    NftNatShape shape;
    std::vector<TrustedLink> trusted;
};
// The elements of the table's trusted_ifaces set become TO's indexes, in place (FROM: what it
// held, for the description).
struct SetTrustedIngress {
    std::string table;
    std::vector<uint32_t> from;
    std::vector<TrustedLink> to;
};
// nftables elements for blocks first..last-1; REPLACE: they become the map's only elements.
// NEW_TABLE: the table did not exist before this plan, so no block can be mapped wrongly while
// the map fills: a backend may fill it alongside the changes that follow (a reboot restores a
// million blocks on one core and the BPF maps on the other), finishing before it reads the
// kernel again.
struct SetNatBlocks {
    Shared<Nat64Config> config;
    uint64_t first = 0;
    uint64_t last = 0;
    bool replace = false;
    bool new_table = false;
};
struct SetNat64Prefixes {
    std::vector<Nat64PrefixEntry> to;
};
// Every host and dynamic block is forgotten; in dynamic mode the leases the store holds are
// re-created and the free queue is refilled with the other blocks.
struct ResetNat64State {
    Shared<Nat64Config> config;  // null: NAT64 off
    std::vector<RestoredLease> leases;
    uint64_t leased_ns = 0;  // CLOCK_MONOTONIC: what the re-created leases are stamped with
};
// Dynamic mode: blocks first..last-1 join the free queue (the pool grew).
struct QueueFreeBlocks {
    Shared<Nat64Config> config;
    uint64_t first = 0;
    uint64_t last = 0;
};
struct RemoveNatTable {
    std::string table;
};
// The ingress fast path on an operator's interface: attach (or atomically replace the program
// REPLACES_ID) xlat64's ingress filter, built for the interface's link-layer header length.
struct AttachIngress {
    std::string ifname;
    int ifindex = 0;
    uint32_t l2_header_len = 0;
    std::optional<uint32_t> replaces_id;
};
// Removes xlat64's ingress filter there (only ours, never the qdisc).
struct DetachIngress {
    int ifindex = 0;
    std::string ifname;
};
}  // namespace change

using Change =
    std::variant<change::CreateDevice, change::SetDeviceMtu, change::DisableAddrGen,
                 change::SetDeviceUp, change::RemoveRoute, change::RemoveEam, change::SetSettings,
                 change::AddEam, change::AttachProgram, change::AddRoute, change::EnsureNatTable,
                 change::SetNatBlocks, change::SetNat64Prefixes, change::ResetNat64State,
                 change::QueueFreeBlocks, change::RemoveNatTable, change::AttachIngress,
                 change::DetachIngress, change::SetTrustedIngress>;
using Plan = std::vector<Change>;

inline std::string to_string(const EamEntry& entry) {
    return to_string(entry.ipv4) + " <-> " + to_string(entry.ipv6);
}

// V sorted. Tables are mostly generated in order, and desired_state() runs twice per reconcile
// (plan and verification): checking is linear, sorting a million entries again is not.
template <typename T>
void sort_unless_sorted(std::vector<T>& v) {
    if (!std::is_sorted(v.begin(), v.end())) {
        std::sort(v.begin(), v.end());
    }
}

// The fewest prefixes covering exactly the addresses of the EAM entries' IPv4 sides: nested
// prefixes fold into the outer one and adjacent halves into their parent, so that a contiguous
// EAMT of a million /32s needs a handful of routes, not a million (each costs the kernel's FIB
// memory and every reconcile a dump). The translator still looks each address up in the EAMT.
// A route of the operator's more specific than such an aggregate wins over it, as routing does.
inline std::vector<Ipv4Prefix> eam_route_prefixes(const std::vector<EamEntry>& eamt) {
    std::vector<Ipv4Prefix> sorted;
    sorted.reserve(eamt.size());
    for (const EamEntry& entry : eamt) {
        sorted.push_back(entry.ipv4);
    }
    // By address then length: a prefix comes before every prefix inside it. (From a sorted EAMT
    // they are in that order already: entries compare by their IPv4 side first.)
    sort_unless_sorted(sorted);
    std::vector<Ipv4Prefix> out;
    for (const Ipv4Prefix& p : sorted) {
        if (!out.empty() && out.back().len <= p.len && contains(out.back(), p.addr)) {
            continue;
        }
        out.push_back(p);
        // Two halves of one parent are always the last two, the lower one first.
        while (out.size() >= 2) {
            const Ipv4Prefix& low = out[out.size() - 2];
            const Ipv4Prefix& high = out.back();
            if (low.len != high.len || low.len == 0) {
                break;
            }
            const uint8_t parent_len = static_cast<uint8_t>(low.len - 1);
            if (mask_address(low.addr, parent_len) != low.addr ||
                mask_address(high.addr, parent_len) != low.addr) {
                break;
            }
            const Ipv4Prefix parent{low.addr, parent_len};
            out.pop_back();
            out.back() = parent;
        }
    }
    return out;
}

inline DesiredState desired_state(const Config& config) {
    DesiredState want;
    want.device_name = config.device.name;
    want.mtu = config.device.mtu;
    want.pool6 = config.pool6;
    want.eamt = config.eamt;
    want.translation = config.translation;
    want.nat64 = config.nat64;
    sort_unless_sorted(want.eamt);
    // Only destinations that need translation go into the device: pool6 and the EAM IPv4
    // prefixes. The EAM IPv6 prefixes are real IPv6 hosts, reached natively; routing them into
    // xlat64 (a literal reading of DESIGN.md) would blackhole their IPv6 traffic.
    if (want.pool6) {
        want.routes.push_back(RouteSpec{*want.pool6, 0});
    }
    const uint32_t ipv4_mtu = ipv4_route_mtu(want.mtu, want.translation.lowest_ipv6_mtu);
    for (const Ipv4Prefix& prefix : eam_route_prefixes(want.eamt)) {
        want.routes.push_back(RouteSpec{prefix, ipv4_mtu});
    }
    // The internal NAT64 pool: the NAT44's replies to subscribers' hosts go back through it.
    if (want.nat64) {
        const Ipv4Prefix& pool = want.nat64->internal_pool;
        want.routes.push_back(
            RouteSpec{Ipv4Prefix{mask_address(pool.addr, pool.len), pool.len}, ipv4_mtu});
    }
    std::sort(want.routes.begin(), want.routes.end());
    want.routes.erase(std::unique(want.routes.begin(), want.routes.end()), want.routes.end());
    want.ingress_interfaces = config.ingress_interfaces;
    std::sort(want.ingress_interfaces.begin(), want.ingress_interfaces.end());
    return want;
}

// Why the ingress fast path cannot be attached to LINK now, or nullopt. Checked only before an
// attach: an attachment that is running is left alone (a reload that fails on another interface
// rolls back to it).
inline std::optional<std::string> ingress_problem(const IngressLink& link) {
    const std::string where = "translation.ingress_interfaces: " + link.name + ": ";
    if (link.foreign_program) {
        return where + "a tc ingress filter that is not xlat64's (program " +
               (link.foreign_program->empty() ? std::string("unknown") : *link.foreign_program) +
               ") holds xlat64's handle and priority 1; remove it or take the interface out of "
               "the list";
    }
    if (!link.l2_header_len) {
        return where + "link type " + link.link_type +
               " is not supported (only Ethernet and interfaces without a link-layer header: "
               "tun, PPP, raw IP, IP tunnels); take the interface out of the list";
    }
    // The packets translated to IPv4 there have sources routed into the xlat64 device, not
    // through this interface.
    const std::string sysctl = "net.ipv4.conf.all.rp_filter or net.ipv4.conf." + link.name +
                               ".rp_filter, the larger applies";
    if (link.rp_filter == 1) {
        return where + "strict reverse-path filtering (1 in " + sysctl +
               ") would drop the packets translated to IPv4 there, whose sources are routed "
               "into the xlat64 device; set rp_filter to 2 (loose) or 0 on " +
               link.name + " and all, or take the interface out of the list";
    }
    if (link.rp_filter >= 2 && !link.has_ipv4_address) {
        return where + "loose reverse-path filtering (2 in " + sysctl +
               ") on an interface without an IPv4 address drops every packet whose source is "
               "not routed through it, as those translated to IPv4 there are; set rp_filter to 0 "
               "on " +
               link.name + " and all, give " + link.name +
               " an IPv4 address, or take the interface out of the list";
    }
    return std::nullopt;
}

// What the operator should know about the ingress interfaces that plans no change: the
// configured ones that do not exist.
inline std::vector<std::string> ingress_warnings(const DesiredState& want,
                                                 const ObservedState& have) {
    std::vector<std::string> out;
    for (const std::string& name : want.ingress_interfaces) {
        const bool exists = std::any_of(have.ingress_links.begin(), have.ingress_links.end(),
                                        [&](const IngressLink& link) { return link.name == name; });
        if (!exists) {
            out.push_back("translation.ingress_interfaces: " + name +
                          ": no such interface; xlat64d attaches the ingress fast path when it "
                          "appears (until then its packets would take the device path)");
        }
    }
    return out;
}

inline std::vector<uint32_t> ifindexes_of(const std::vector<TrustedLink>& links) {
    std::vector<uint32_t> out;
    for (const TrustedLink& link : links) {
        out.push_back(static_cast<uint32_t>(link.ifindex));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// The nftables table WANT asks for, trusting internal sources from the device (by name) and from
// TRUSTED (by index; see NftNatShape::trusted_device). The defaults without a nat64 section: the
// table that removing the section removes.
inline NftNatShape nat_table_shape(const DesiredState& want,
                                   const std::vector<TrustedLink>& trusted = {}) {
    return nat64_nft_shape(want.nat64.value_or(Nat64Config{}), want.device_name,
                           ifindexes_of(trusted));
}

// Which ingress interfaces the NAT64 table may trust, by index. Trust follows the program, never
// the name: an interface that appears or is re-created under a listed name (a PPP session that
// reconnects, a veth made again) gets a new index, and its internal sources are dropped as
// spoofed until the program that drops plain IPv4 from the pool is on it. NOW: those that carry
// xlat64's ingress program now (this build's or another's: both drop it); AFTER: those that
// carry it once the plan is applied (every configured one that exists: a plan that cannot
// attach somewhere throws).
struct IngressTrust {
    std::vector<TrustedLink> now;
    std::vector<TrustedLink> after;
};

inline IngressTrust ingress_trust(const DesiredState& want, const ObservedState& have) {
    IngressTrust trust;
    for (const IngressLink& link : have.ingress_links) {
        if (!std::binary_search(want.ingress_interfaces.begin(), want.ingress_interfaces.end(),
                                link.name) ||
            link.ifindex <= 0) {
            continue;
        }
        if (link.attached_id && !link.foreign_program) {
            trust.now.push_back({link.ifindex, link.name});
        }
        trust.after.push_back({link.ifindex, link.name});
    }
    std::sort(trust.now.begin(), trust.now.end());
    std::sort(trust.after.begin(), trust.after.end());
    return trust;
}

namespace plan_detail {

// Elements of sorted `a` missing from sorted `b`.
template <typename T>
std::vector<T> missing_from(const std::vector<T>& a, const std::vector<T>& b) {
    std::vector<T> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

// How the routes of SORTED (sorted, as missing_from returns them) relate to the prefix P: one of
// them has P's prefix, or one overlaps it (contains it or lies inside it). Binary searches, so
// that a reload replacing a million routes stays linear.
struct RouteOverlap {
    bool same_prefix = false;
    bool overlap = false;
};

template <typename Prefix>
RouteOverlap route_overlap(const std::vector<RouteSpec>& sorted, const Prefix& p) {
    auto first_at_or_after = [&](const Prefix& q) {
        return std::lower_bound(sorted.begin(), sorted.end(), RouteSpec{q, 0});
    };
    auto has = [&](const Prefix& q) {
        auto it = first_at_or_after(q);
        return it != sorted.end() && it->destination == RoutePrefix{q};
    };
    RouteOverlap out;
    for (unsigned len = 0; len < p.len && !out.overlap; ++len) {
        out.overlap = has(Prefix{mask_address(p.addr, len), static_cast<uint8_t>(len)});
    }
    // Sorted by address then length, the prefixes inside P come right after P itself.
    auto it = first_at_or_after(p);
    for (; it != sorted.end() && it->destination == RoutePrefix{p}; ++it) {
        out.same_prefix = true;
    }
    if (it != sorted.end()) {
        if (const Prefix* next = std::get_if<Prefix>(&it->destination)) {
            out.overlap = out.overlap || contains(p, next->addr);
        }
    }
    out.overlap = out.overlap || out.same_prefix;
    return out;
}

// Route additions in two groups: those that overlap a route being removed (an aggregate split
// or merged after an EAM change: 198.18.0.0/15 giving way to its pieces) come before the
// removal, so that an address that stays mapped is never left without its route and sent
// untranslated towards the default route meanwhile; the rest come last, once the maps are ready.
// A route with the same prefix as a removed one (an MTU change) can only follow its removal.
inline std::pair<std::vector<RouteSpec>, std::vector<RouteSpec>> split_route_additions(
    const std::vector<RouteSpec>& added, const std::vector<RouteSpec>& removed) {
    std::pair<std::vector<RouteSpec>, std::vector<RouteSpec>> out;
    for (const RouteSpec& route : added) {
        const RouteOverlap o =
            std::visit([&](const auto& p) { return route_overlap(removed, p); }, route.destination);
        (o.overlap && !o.same_prefix ? out.first : out.second).push_back(route);
    }
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

inline std::optional<TranslatorSettings> observed_settings(const ObservedState& have) {
    if (!have.translation) {
        return std::nullopt;
    }
    return TranslatorSettings{have.pool6, *have.translation, have.nat64};
}

// The nftables half first, so that an internal block has its public block before any host can be
// given an address in it; then the settings; then the data path's NAT64 state.
inline void plan_nat64_table(const Nat64Config& want, const NftNatShape& shape,
                             const std::vector<TrustedLink>& trusted, const ObservedState& have,
                             Nat64Transition transition, Plan& plan) {
    if (have.nat_table == NatTableState::foreign) {
        throw std::runtime_error("nftables table ip " + want.table +
                                 " exists and is not managed by xlat64d; choose another "
                                 "nat64.table");
    }
    const uint64_t mapped = nat64_mapped_blocks(want);
    if (have.nat_table != NatTableState::current) {
        plan.push_back(change::EnsureNatTable{want.table, shape, trusted});
    }
    if (have.nat_table == NatTableState::absent || transition == Nat64Transition::reset) {
        plan.push_back(change::SetNatBlocks{share(want), 0, mapped, true,
                                            have.nat_table == NatTableState::absent});
    } else if (transition == Nat64Transition::grow && have.nat64 &&
               want.mode == Nat64Mode::dynamic && have.nat64->blocks < mapped) {
        plan.push_back(change::SetNatBlocks{share(want), have.nat64->blocks, mapped, false});
    }
}

inline void plan_settings_and_nat64(const DesiredState& want, const ObservedState& have,
                                    Plan& plan) {
    const auto transition =
        want.nat64 ? nat64_transition(have.nat64, *want.nat64) : Nat64Transition::unchanged;
    if (want.nat64) {
        // A table built or rebuilt here trusts what carries the program now: the attaches come
        // last, and the trust they bring follows them (plan_ingress_trust).
        const std::vector<TrustedLink> trusted = ingress_trust(want, have).now;
        plan_nat64_table(*want.nat64, nat_table_shape(want, trusted), trusted, have, transition,
                         plan);
    }
    const TranslatorSettings settings = want.settings();
    const auto observed = observed_settings(have);
    if (observed != settings) {
        plan.push_back(change::SetSettings{share(observed), share(settings)});
    }
    const auto prefixes =
        want.nat64 ? nat64_prefix_entries(*want.nat64) : std::vector<Nat64PrefixEntry>{};
    if (have.nat64_prefixes != prefixes) {
        plan.push_back(change::SetNat64Prefixes{prefixes});
    }
    if (!want.nat64) {
        if (have.nat64) {
            plan.push_back(change::ResetNat64State{nullptr, {}});
        }
        if (have.nat_table == NatTableState::current ||
            have.nat_table == NatTableState::other_shape) {
            plan.push_back(change::RemoveNatTable{Nat64Config{}.table});
        }
        return;
    }
    if (transition == Nat64Transition::reset) {
        plan.push_back(
            change::ResetNat64State{share(want.nat64), want.nat64_leases, want.nat64_leased_ns});
    } else if (transition == Nat64Transition::grow && want.nat64->mode == Nat64Mode::dynamic &&
               have.nat64->blocks < settings.nat64->blocks) {
        plan.push_back(
            change::QueueFreeBlocks{share(want.nat64), have.nat64->blocks, settings.nat64->blocks});
    }
}

// Our filters on interfaces no longer configured (or re-created under a configured name with a
// new index) come off; configured interfaces get the filter when it is missing or runs another
// build's program. Problems of the interfaces to attach are reported together.
inline void plan_ingress(const DesiredState& want, const ObservedState& have,
                         std::vector<Change>& detaches, std::vector<Change>& attaches) {
    auto configured = [&](const IngressLink& link) {
        return std::binary_search(want.ingress_interfaces.begin(), want.ingress_interfaces.end(),
                                  link.name);
    };
    auto wanted_at = [&](const IngressAttachment& a) {
        return std::any_of(
            have.ingress_links.begin(), have.ingress_links.end(),
            [&](const IngressLink& link) { return link.ifindex == a.ifindex && configured(link); });
    };
    for (const IngressAttachment& a : have.ingress_attached) {
        if (!wanted_at(a)) {
            detaches.push_back(change::DetachIngress{a.ifindex, a.ifname});
        }
    }
    std::string problems;
    for (const IngressLink& link : have.ingress_links) {
        if (!configured(link) || (link.attached_id && link.attached_current)) {
            continue;
        }
        if (auto problem = ingress_problem(link)) {
            problems += (problems.empty() ? "" : "; ") + *problem;
            continue;
        }
        attaches.push_back(
            change::AttachIngress{link.name, link.ifindex, *link.l2_header_len, link.attached_id});
    }
    if (!problems.empty()) {
        throw std::runtime_error(problems);
    }
}

// The changes to the trusted_ifaces elements of a table that exists: EARLY, right after the
// device's changes and before the detaches, takes out every index that does not carry the
// program now (an interface re-created under a listed name is gone from it anyway; one whose
// filter someone removed is not) and those whose program is about to be detached; LATE, after
// the attaches, adds the interfaces that carry it from then on. A table built or rebuilt by the
// plan starts from NOW (plan_settings_and_nat64) and gets LATE too.
inline void plan_ingress_trust(const DesiredState& want, const ObservedState& have,
                               std::vector<Change>& early, std::vector<Change>& late) {
    if (!want.nat64 || have.nat_table == NatTableState::foreign) {
        return;
    }
    const IngressTrust trust = ingress_trust(want, have);
    const std::vector<uint32_t> now = ifindexes_of(trust.now);
    std::vector<uint32_t> before_attach = now;  // what the table holds when the attaches run
    if (have.nat_table == NatTableState::current) {
        before_attach.clear();
        std::set_intersection(have.nat_trusted_ifindexes.begin(), have.nat_trusted_ifindexes.end(),
                              now.begin(), now.end(), std::back_inserter(before_attach));
        if (before_attach != have.nat_trusted_ifindexes) {
            std::vector<TrustedLink> kept;
            for (const TrustedLink& link : trust.now) {
                if (std::binary_search(before_attach.begin(), before_attach.end(),
                                       static_cast<uint32_t>(link.ifindex))) {
                    kept.push_back(link);
                }
            }
            early.push_back(
                change::SetTrustedIngress{want.nat64->table, have.nat_trusted_ifindexes, kept});
        }
    }
    if (ifindexes_of(trust.after) != before_attach) {
        late.push_back(change::SetTrustedIngress{want.nat64->table, before_attach, trust.after});
    }
}

}  // namespace plan_detail

// The order is the safety argument: the device first; then removals, routes before map entries,
// so no traffic enters for a mapping that is going away; then map additions and the program;
// routes last, so traffic only enters once the translator is ready for it; the ingress fast path
// after everything else (it shares the maps, and what it leaves alone takes the device path),
// and off first, before anything it relies on changes. The NAT64 table trusts an ingress
// interface's internal sources only while the program is on it: untrusted first of all, trusted
// only after the attach (plan_ingress_trust). A changed route (new MTU) is removed and re-added
// rather than replaced: NLM_F_REPLACE picks the first route with the same prefix and metric,
// which may belong to someone else. Throws when a device of the
// configured name exists and is not ours.
inline Plan compute_plan(const DesiredState& want, const ObservedState& have) {
    using plan_detail::missing_from;
    Plan plan;
    plan_detail::plan_device(want, have, plan);
    std::vector<Change> ingress_detaches;
    std::vector<Change> ingress_attaches;
    plan_detail::plan_ingress(want, have, ingress_detaches, ingress_attaches);
    std::vector<Change> untrust;
    std::vector<Change> trust;
    plan_detail::plan_ingress_trust(want, have, untrust, trust);
    plan.insert(plan.end(), untrust.begin(), untrust.end());
    plan.insert(plan.end(), ingress_detaches.begin(), ingress_detaches.end());
    const std::vector<RouteSpec> removed = missing_from(have.routes, want.routes);
    auto [early_routes, late_routes] =
        plan_detail::split_route_additions(missing_from(want.routes, have.routes), removed);
    for (const RouteSpec& route : early_routes) {
        plan.push_back(change::AddRoute{route});
    }
    for (const RouteSpec& route : removed) {
        plan.push_back(change::RemoveRoute{route});
    }
    for (const EamEntry& entry : missing_from(have.eamt, want.eamt)) {
        plan.push_back(change::RemoveEam{entry});
    }
    plan_detail::plan_settings_and_nat64(want, have, plan);
    for (const EamEntry& entry : missing_from(want.eamt, have.eamt)) {
        plan.push_back(change::AddEam{entry});
    }
    if (!have.program_current) {
        plan.push_back(change::AttachProgram{have.attached_program_id});
    }
    for (const RouteSpec& route : late_routes) {
        plan.push_back(change::AddRoute{route});
    }
    plan.insert(plan.end(), ingress_attaches.begin(), ingress_attaches.end());
    plan.insert(plan.end(), trust.begin(), trust.end());
    return plan;
}

namespace plan_detail {

inline std::string describe_pool6(const std::optional<Ipv6Prefix>& from,
                                  const std::optional<Ipv6Prefix>& to) {
    if (!to) {
        return "clear pool6 (was " + to_string(*from) + ")";
    }
    if (!from) {
        return "set pool6 " + to_string(*to);
    }
    return "change pool6 " + to_string(*from) + " -> " + to_string(*to);
}

inline std::string describe_nat64(const std::optional<Nat64Params>& n) {
    if (!n) {
        return "NAT64 off";
    }
    return "NAT64 internal pool " + to_string(n->internal_pool) + ", " + std::to_string(n->blocks) +
           " blocks, " + (n->dynamic ? "dynamic" : "deterministic") + ", subscribers /" +
           std::to_string(n->subscriber_len) + " with " + std::to_string(1u << n->host_bits) +
           " addresses each";
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

inline std::string describe_settings(const change::SetSettings& c) {
    std::vector<std::string> parts;
    const auto from_pool6 = c.from ? c.from->pool6 : std::nullopt;
    if (from_pool6 != c.to->pool6) {
        parts.push_back(describe_pool6(from_pool6, c.to->pool6));
    }
    if (!c.from || c.from->translation != c.to->translation) {
        parts.push_back("set translation options: " + describe_translation(c.to->translation));
    }
    if (!c.from || c.from->nat64 != c.to->nat64) {
        if (c.to->nat64 || (c.from && c.from->nat64)) {
            parts.push_back("set " + describe_nat64(c.to->nat64));
        }
    }
    std::string out;
    for (const std::string& part : parts) {
        out += (out.empty() ? "" : "; ") + part;
    }
    return out;
}

// "eth1 (ifindex 5), ppp0 (ifindex 9)", or NONE.
inline std::string describe_trusted(const std::vector<TrustedLink>& links, const char* none) {
    std::string out;
    for (const TrustedLink& link : links) {
        out += (out.empty() ? "" : ", ") + link.name + " (ifindex " + std::to_string(link.ifindex) +
               ")";
    }
    return out.empty() ? none : out;
}

inline std::string describe_ifindexes(const std::vector<uint32_t>& ifindexes) {
    std::string out;
    for (uint32_t ifindex : ifindexes) {
        out += (out.empty() ? "ifindex " : ", ") + std::to_string(ifindex);
    }
    return out.empty() ? "none" : out;
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
        std::string operator()(const change::SetSettings& c) const {
            return plan_detail::describe_settings(c);
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
        std::string operator()(const change::EnsureNatTable& c) const {
            return "create, rebuild or update nftables table ip " + c.table +
                   " for internal pool " + to_string(c.shape.internal_pool) + " (blocks /" +
                   std::to_string(c.shape.block_len) + ", " + std::to_string(c.shape.block_ports) +
                   " ports; internal sources from device " + c.shape.trusted_device +
                   " and ingress interfaces " + plan_detail::describe_trusted(c.trusted, "none") +
                   ")";
        }
        std::string operator()(const change::SetTrustedIngress& c) const {
            return "trust internal sources in table ip " + c.table + " from ingress interfaces " +
                   plan_detail::describe_trusted(c.to, "none") + " (was " +
                   plan_detail::describe_ifindexes(c.from) + ")";
        }
        std::string operator()(const change::SetNatBlocks& c) const {
            return std::string(c.replace ? "set" : "add") + " NAT44 blocks " +
                   std::to_string(c.first) + ".." + std::to_string(c.last == 0 ? 0 : c.last - 1) +
                   " in table ip " + c.config->table;
        }
        std::string operator()(const change::SetNat64Prefixes& c) const {
            std::string out = "set NAT64 admitted prefixes:";
            for (const auto& e : c.to) {
                out += " " + to_string(e.prefix);
            }
            return c.to.empty() ? "clear NAT64 admitted prefixes" : out;
        }
        std::string operator()(const change::ResetNat64State& c) const {
            if (!c.config) {
                return "remove NAT64 hosts and blocks";
            }
            return "reset NAT64 hosts and blocks (new or changed pool layout)" +
                   (c.leases.empty() ? std::string()
                                     : ", restoring " + std::to_string(c.leases.size()) +
                                           " leases from the store");
        }
        std::string operator()(const change::QueueFreeBlocks& c) const {
            return "queue free NAT64 blocks " + std::to_string(c.first) + ".." +
                   std::to_string(c.last - 1);
        }
        std::string operator()(const change::RemoveNatTable& c) const {
            return "remove nftables table ip " + c.table;
        }
        std::string operator()(const change::AttachIngress& c) const {
            const std::string what = "the ingress fast path on " + c.ifname + " (" +
                                     std::to_string(c.l2_header_len) + "-byte link-layer header)";
            return c.replaces_id ? "replace attached program id " + std::to_string(*c.replaces_id) +
                                       " with " + what
                                 : "attach " + what;
        }
        std::string operator()(const change::DetachIngress& c) const {
            return "detach the ingress fast path from " + c.ifname + " (ifindex " +
                   std::to_string(c.ifindex) + ")";
        }
    };
    return std::visit(Describer{}, c);
}

}  // namespace xlat64
