// The reconciler's rules for the ingress fast path (translation.ingress_interfaces, daemon/plan.h):
// where xlat64's ingress filter is attached, replaced or removed, and what refuses an attach.
#include <catch2/catch.hpp>

#include "daemon/plan.h"
#include "test/unit/converged_state.h"

using namespace xlat64;
using Catch::Matchers::Contains;

namespace {

Config config_with(std::vector<std::string> interfaces) {
    Config config;
    config.pool6 = parse_ipv6_prefix("2001:db8:64::/96");
    config.ingress_interfaces = std::move(interfaces);
    return config;
}

using xlat64_test::converged;

using xlat64_test::attached;
using xlat64_test::ethernet;

}  // namespace

TEST_CASE("ingress: nothing configured, nothing attached: no change", "[ingress]") {
    const Config config = config_with({});
    CHECK(compute_plan(desired_state(config), converged(config)).empty());
}

TEST_CASE("ingress: a configured interface gets the filter, after everything else", "[ingress]") {
    const Config config = config_with({"eth1", "ppp0"});
    ObservedState have = converged(config);
    have.routes.clear();  // routes to add: the attach must come after them
    IngressLink ppp = ethernet("ppp0", 5);
    ppp.link_type = "ppp";
    ppp.l2_header_len = 0;
    have.ingress_links = {ethernet("eth1", 3), ppp};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 3);
    CHECK(std::holds_alternative<change::AddRoute>(plan[0]));
    const auto& eth = std::get<change::AttachIngress>(plan[1]);
    CHECK(eth.ifname == "eth1");
    CHECK(eth.ifindex == 3);
    CHECK(eth.l2_header_len == 14);
    CHECK_FALSE(eth.replaces_id);
    CHECK(std::get<change::AttachIngress>(plan[2]).l2_header_len == 0);
    CHECK(describe(plan[1]) == "attach the ingress fast path on eth1 (14-byte link-layer header)");
}

TEST_CASE("ingress: an attached current program is kept, another build's is replaced",
          "[ingress]") {
    const Config config = config_with({"eth1"});
    ObservedState have = converged(config);
    have.ingress_links = {attached(ethernet("eth1", 3), 77)};
    have.ingress_attached = {{3, "eth1", 77}};
    CHECK(compute_plan(desired_state(config), have).empty());

    have.ingress_links = {attached(ethernet("eth1", 3), 77, false)};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 1);
    CHECK(std::get<change::AttachIngress>(plan[0]).replaces_id == 77u);
    CHECK_THAT(describe(plan[0]), Contains("replace attached program id 77"));
}

TEST_CASE("ingress: our filter where no longer configured is detached first", "[ingress]") {
    const Config config = config_with({"eth1"});
    ObservedState have = converged(config);
    have.routes.pop_back();  // a route to remove: the detach must come before it
    have.ingress_links = {attached(ethernet("eth1", 3), 77)};
    // eth2 was taken out of the list; ifindex 9 is what a previous daemon left on an interface
    // now called otherwise.
    have.ingress_attached = {{3, "eth1", 77}, {4, "eth2", 78}, {9, "veth9", 79}};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() >= 2);
    CHECK(std::get<change::DetachIngress>(plan[0]).ifname == "eth2");
    CHECK(std::get<change::DetachIngress>(plan[1]).ifindex == 9);
    CHECK(describe(plan[0]) == "detach the ingress fast path from eth2 (ifindex 4)");
}

TEST_CASE("ingress: strict rp_filter refuses the attach, naming the fix", "[ingress]") {
    const Config config = config_with({"eth1"});
    ObservedState have = converged(config);
    IngressLink strict = ethernet("eth1", 3);
    strict.rp_filter = 1;
    have.ingress_links = {strict};
    CHECK_THROWS_WITH(compute_plan(desired_state(config), have),
                      Contains("translation.ingress_interfaces: eth1: strict reverse-path "
                               "filtering") &&
                          Contains("set rp_filter to 2 (loose) or 0") &&
                          Contains("take the interface out of the list"));
    // Loose is fine on an interface with an IPv4 address; without one the kernel drops every
    // source not routed through it.
    have.ingress_links[0].rp_filter = 2;
    CHECK_THROWS_WITH(compute_plan(desired_state(config), have),
                      Contains("eth1: loose reverse-path filtering") &&
                          Contains("without an IPv4 address") && Contains("set rp_filter to 0"));
    have.ingress_links[0].has_ipv4_address = true;
    CHECK(compute_plan(desired_state(config), have).size() == 1);
    have.ingress_links[0].rp_filter = 0;
    have.ingress_links[0].has_ipv4_address = false;
    CHECK(compute_plan(desired_state(config), have).size() == 1);
    // A running attachment is left alone (a failed reload rolls back to it).
    have.ingress_links = {attached(strict, 77)};
    have.ingress_attached = {{3, "eth1", 77}};
    CHECK(compute_plan(desired_state(config), have).empty());
}

TEST_CASE("ingress: unsupported link types and foreign filters are refused", "[ingress]") {
    const Config config = config_with({"lo", "eth1"});
    ObservedState have = converged(config);
    IngressLink lo = ethernet("lo", 1);
    lo.link_type = "loopback";
    lo.l2_header_len.reset();
    IngressLink eth = ethernet("eth1", 3);
    eth.foreign_program = "cil_from_netdev";
    have.ingress_links = {eth, lo};
    CHECK_THROWS_WITH(compute_plan(desired_state(config), have),
                      Contains("eth1: a tc ingress filter that is not xlat64's (program "
                               "cil_from_netdev)") &&
                          Contains("lo: link type loopback is not supported"));
}

TEST_CASE("ingress: a configured interface that does not exist is a warning", "[ingress]") {
    const Config config = config_with({"eth1", "eth9"});
    const DesiredState want = desired_state(config);
    ObservedState have = converged(config);
    have.ingress_links = {attached(ethernet("eth1", 3), 77)};
    have.ingress_attached = {{3, "eth1", 77}};
    CHECK(compute_plan(want, have).empty());
    const auto warnings = ingress_warnings(want, have);
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Contains("translation.ingress_interfaces: eth9: no such interface") &&
                                Contains("device path"));
}
