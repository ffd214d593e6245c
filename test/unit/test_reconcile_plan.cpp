// The reconciler's planning rules (daemon/plan.h): what changes, in which order, and that a
// converged kernel plans nothing.
#include <catch2/catch.hpp>

#include "daemon/plan.h"
#include "test/unit/converged_state.h"

using namespace xlat64;

namespace {

Ipv4Prefix v4(const char* text) {
    return *parse_ipv4_prefix(text);
}
Ipv6Prefix v6(const char* text) {
    return *parse_ipv6_prefix(text);
}

Config sample_config() {
    Config config;
    config.device.name = "xlat64";
    config.device.mtu = 1500;
    config.pool6 = v6("2001:db8:64::/96");
    config.eamt = {{v4("198.51.100.0/24"), v6("2001:db8:1::/120")}};
    // An IPv6 network that carries 1500 bytes: the IPv4 routes get 1500 - 28.
    config.translation.lowest_ipv6_mtu = 1500;
    return config;
}

using xlat64_test::converged;

std::vector<std::string> descriptions(const Plan& plan) {
    std::vector<std::string> out;
    for (const Change& change : plan) {
        out.push_back(describe(change));
    }
    return out;
}

}  // namespace

TEST_CASE("desired routes: pool6 and the EAM IPv4 prefixes, never the EAM IPv6 prefixes") {
    const DesiredState want = desired_state(sample_config());
    REQUIRE(want.routes.size() == 2);
    CHECK(want.routes[0] == RouteSpec{v4("198.51.100.0/24"), 1472});
    CHECK(want.routes[1] == RouteSpec{v6("2001:db8:64::/96"), 0});
}

TEST_CASE("desired routes without pool6: only the EAM IPv4 prefixes") {
    Config config = sample_config();
    config.pool6.reset();
    const DesiredState want = desired_state(config);
    REQUIRE(want.routes.size() == 1);
    CHECK(std::holds_alternative<Ipv4Prefix>(want.routes[0].destination));
}

TEST_CASE("an empty kernel gets device, maps, program, then routes") {
    const Plan plan = compute_plan(desired_state(sample_config()), ObservedState{});
    CHECK(descriptions(plan) == std::vector<std::string>{
                                    "create device xlat64 (mtu 1500)",
                                    "set pool6 2001:db8:64::/96; set translation options: "
                                    "lowest_ipv6_mtu 1500, udp_zero_checksum compute, "
                                    "traffic_class copy, allow_wkp_non_global false",
                                    "add EAM 198.51.100.0/24 <-> 2001:db8:1::/120",
                                    "attach the translator program to tc egress",
                                    "add route 198.51.100.0/24 mtu 1472",
                                    "add route 2001:db8:64::/96",
                                });
}

TEST_CASE("a converged kernel plans nothing (restart adopts)") {
    const Config config = sample_config();
    CHECK(compute_plan(desired_state(config), converged(config)).empty());
}

TEST_CASE("a device of our name that is not ours is refused") {
    const Config config = sample_config();
    ObservedState have = converged(config);
    have.device->managed = false;
    CHECK_THROWS_WITH(compute_plan(desired_state(config), have),
                      "device xlat64 exists and is not managed by xlat64d; choose another "
                      "device.name");
}

TEST_CASE("device settings are repaired in place") {
    const Config config = sample_config();
    ObservedState have = converged(config);
    have.device->mtu = 1400;
    have.device->up = false;
    have.device->addr_gen_none = false;
    CHECK(descriptions(compute_plan(desired_state(config), have)) ==
          std::vector<std::string>{
              "set mtu of xlat64 1400 -> 1500",
              "set addr_gen_mode none on xlat64",
              "bring up xlat64",
          });
}

TEST_CASE("removals come first, routes before map entries; additions after, routes last") {
    const Config old_config = sample_config();
    Config config = sample_config();
    config.pool6 = v6("2001:db8:46::/96");
    config.eamt = {{v4("203.0.113.0/28"), v6("2001:db8:3::/124")}};
    CHECK(descriptions(compute_plan(desired_state(config), converged(old_config))) ==
          std::vector<std::string>{
              "remove route 198.51.100.0/24 mtu 1472",
              "remove route 2001:db8:64::/96",
              "remove EAM 198.51.100.0/24 <-> 2001:db8:1::/120",
              "change pool6 2001:db8:64::/96 -> 2001:db8:46::/96",
              "add EAM 203.0.113.0/28 <-> 2001:db8:3::/124",
              "add route 203.0.113.0/28 mtu 1472",
              "add route 2001:db8:46::/96",
          });
}

TEST_CASE("an MTU change re-adds the IPv4 routes with min(mtu, lowest_ipv6_mtu) - 28") {
    const Config old_config = sample_config();
    Config config = sample_config();
    config.device.mtu = 1400;
    CHECK(descriptions(compute_plan(desired_state(config), converged(old_config))) ==
          std::vector<std::string>{
              "set mtu of xlat64 1500 -> 1400",
              "remove route 198.51.100.0/24 mtu 1472",
              "add route 198.51.100.0/24 mtu 1372",
          });
}

TEST_CASE("an EAM entry whose IPv6 side changed is removed, then added") {
    const Config old_config = sample_config();
    Config config = sample_config();
    config.eamt[0].ipv6 = v6("2001:db8:9::/120");
    CHECK(descriptions(compute_plan(desired_state(config), converged(old_config))) ==
          std::vector<std::string>{
              "remove EAM 198.51.100.0/24 <-> 2001:db8:1::/120",
              "add EAM 198.51.100.0/24 <-> 2001:db8:9::/120",
          });
}

TEST_CASE("a program with another tag is replaced; pool6 removal clears the map") {
    const Config old_config = sample_config();
    Config config = sample_config();
    config.pool6.reset();
    ObservedState have = converged(old_config);
    have.program_current = false;
    CHECK(descriptions(compute_plan(desired_state(config), have)) ==
          std::vector<std::string>{
              "remove route 2001:db8:64::/96",
              "clear pool6 (was 2001:db8:64::/96)",
              "replace attached program id 42 with the translator of this build",
          });
}

TEST_CASE("foreign routes never appear in the plan: the backend lists only ours") {
    // ObservedState::routes holds only proto-64 routes via the device, so a route the operator
    // added is neither listed nor removed; this pins down that an extra route of ours is.
    const Config config = sample_config();
    ObservedState have = converged(config);
    have.routes.push_back(RouteSpec{v4("192.0.2.0/24"), 1472});
    std::sort(have.routes.begin(), have.routes.end());
    CHECK(descriptions(compute_plan(desired_state(config), have)) ==
          std::vector<std::string>{"remove route 192.0.2.0/24 mtu 1472"});
}

TEST_CASE("IPv4 routes get min(device mtu, lowest_ipv6_mtu) - 28 (RFC 7915 section 4)") {
    Config config = sample_config();
    config.translation = TranslationConfig{};  // lowest_ipv6_mtu 1280 by default
    const DesiredState want = desired_state(config);
    CHECK(want.routes[0] == RouteSpec{v4("198.51.100.0/24"), 1252});
    CHECK(ipv4_route_mtu(1400, 9000) == 1372);
}

TEST_CASE("changed settings are one change carrying the whole settings") {
    const Config old_config = sample_config();
    Config config = sample_config();
    config.translation.traffic_class = 0;
    config.translation.drop_udp_zero_checksum = true;
    const Plan plan = compute_plan(desired_state(config), converged(old_config));
    CHECK(descriptions(plan) ==
          std::vector<std::string>{
              "set translation options: lowest_ipv6_mtu 1500, udp_zero_checksum drop, "
              "traffic_class 0, allow_wkp_non_global false",
          });
    const auto& change = std::get<change::SetSettings>(plan[0]);
    CHECK(change.to->pool6 == config.pool6);
}

TEST_CASE("settings never written are written even without pool6 (EAMT only)") {
    Config config = sample_config();
    config.pool6.reset();
    ObservedState have = converged(config);
    have.translation.reset();
    CHECK(descriptions(compute_plan(desired_state(config), have)).size() == 1);
}

// --- routes of large EAMTs (issue 7) ------------------------------------------------------------

namespace {

std::vector<std::string> texts(const std::vector<Ipv4Prefix>& prefixes) {
    std::vector<std::string> out;
    for (const Ipv4Prefix& p : prefixes) {
        out.push_back(to_string(p));
    }
    return out;
}

std::vector<EamEntry> eams(const std::vector<const char*>& ipv4) {
    std::vector<EamEntry> out;
    uint8_t n = 0;
    for (const char* text : ipv4) {
        Ipv4Prefix p = v4(text);
        Ipv6Prefix q = v6("2001:db8:ee::/128");
        q.addr[15] = ++n;  // distinct IPv6 sides; routes only follow the IPv4 ones
        q.len = static_cast<uint8_t>(96 + p.len);
        out.push_back({p, {mask_address(q.addr, q.len), q.len}});
    }
    return out;
}

}  // namespace

TEST_CASE("EAM routes: adjacent halves fold into their parent, nested prefixes into the outer") {
    CHECK(texts(eam_route_prefixes(
              eams({"192.0.2.1/32", "192.0.2.0/32", "192.0.2.2/32", "192.0.2.3/32"}))) ==
          std::vector<std::string>{"192.0.2.0/30"});
    CHECK(texts(eam_route_prefixes(eams({"192.0.2.0/24", "192.0.2.7/32", "192.0.2.128/25"}))) ==
          std::vector<std::string>{"192.0.2.0/24"});
    // Not halves of one parent: .1 and .2 are adjacent but straddle the /31 boundary.
    CHECK(texts(eam_route_prefixes(eams({"192.0.2.1/32", "192.0.2.2/32"}))) ==
          std::vector<std::string>{"192.0.2.1/32", "192.0.2.2/32"});
    // A fold can complete an earlier one: .0/31 and .2/31 give .0/30, with .4/30 the /29.
    CHECK(texts(eam_route_prefixes(
              eams({"192.0.2.0/31", "192.0.2.4/30", "192.0.2.2/31", "198.51.100.0/24"}))) ==
          std::vector<std::string>{"192.0.2.0/29", "198.51.100.0/24"});
    CHECK(eam_route_prefixes({}).empty());
}

TEST_CASE("EAM routes: every address of the entries is covered, and no other") {
    // 1000 /32s from 192.0.2.0 upwards, every seventh left out.
    std::vector<EamEntry> eamt;
    for (uint32_t i = 0; i < 1000; ++i) {
        if (i % 7 == 3) {
            continue;
        }
        Ipv4Prefix p = v4("192.0.0.0/32");
        p.addr[2] = static_cast<uint8_t>(i >> 8);
        p.addr[3] = static_cast<uint8_t>(i);
        eamt.push_back({p, v6("2001:db8::/128")});
    }
    const auto routes = eam_route_prefixes(eamt);
    CHECK(routes.size() < eamt.size() / 2);
    for (uint32_t i = 0; i < 1100; ++i) {
        Ipv4Address a = v4("192.0.0.0/32").addr;
        a[2] = static_cast<uint8_t>(i >> 8);
        a[3] = static_cast<uint8_t>(i);
        const bool routed = std::any_of(routes.begin(), routes.end(),
                                        [&](const Ipv4Prefix& r) { return contains(r, a); });
        CHECK(routed == (i < 1000 && i % 7 != 3));
    }
}

TEST_CASE("an EAM route split by a removal: the pieces are added before the aggregate goes") {
    Config old_config = sample_config();
    old_config.pool6.reset();
    old_config.eamt = eams({"192.0.2.0/32", "192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"});
    Config config = old_config;
    config.eamt.erase(config.eamt.begin() + 2);  // 192.0.2.2
    CHECK(descriptions(compute_plan(desired_state(config), converged(old_config))) ==
          std::vector<std::string>{
              "add route 192.0.2.0/31 mtu 1472",
              "add route 192.0.2.3/32 mtu 1472",
              "remove route 192.0.2.0/30 mtu 1472",
              "remove EAM 192.0.2.2/32 <-> 2001:db8:ee::3/128",
          });
    // And back: the merged route comes first, its pieces go after.
    CHECK(descriptions(compute_plan(desired_state(old_config), converged(config))) ==
          std::vector<std::string>{
              "add route 192.0.2.0/30 mtu 1472",
              "remove route 192.0.2.0/31 mtu 1472",
              "remove route 192.0.2.3/32 mtu 1472",
              "add EAM 192.0.2.2/32 <-> 2001:db8:ee::3/128",
          });
}

TEST_CASE("a new NAT64 table's blocks may fill alongside the next changes, a reset's may not") {
    const Config config = parse_config(R"(nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  internal_pool: 100.64.0.0/16
  public_prefixes: [203.0.113.0/28]
)",
                                       "t");
    const DesiredState want = desired_state(config);
    auto set_blocks = [](const Plan& plan) {
        for (const Change& change : plan) {
            if (const auto* c = std::get_if<change::SetNatBlocks>(&change)) {
                return *c;
            }
        }
        FAIL("no SetNatBlocks in the plan");
        return change::SetNatBlocks{};
    };
    ObservedState have;  // nothing in the kernel: a first start or a reboot
    const change::SetNatBlocks fresh = set_blocks(compute_plan(want, have));
    CHECK(fresh.replace);
    CHECK(fresh.new_table);

    // The table is there and the layout changes: its blocks are replaced in order, since packets
    // of the old layout may still be SNATed by it.
    have.nat_table = NatTableState::current;
    have.translation = want.translation;
    have.nat64 = want.settings().nat64;
    have.nat64->layout_hash ^= 1;
    const change::SetNatBlocks reset = set_blocks(compute_plan(want, have));
    CHECK(reset.replace);
    CHECK_FALSE(reset.new_table);
}
