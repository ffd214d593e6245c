// The NAT64 table trusts internal sources from an ingress fast path interface by index, and only
// while xlat64's program is on it (daemon/plan.h, plan_ingress_trust): an interface that appears
// or is re-created under a listed name is untrusted until its program is attached, in the same
// plan, after the attach.
#include <catch2/catch.hpp>

#include "daemon/plan.h"
#include "test/unit/converged_state.h"

using namespace xlat64;
using Catch::Matchers::Contains;

namespace {

Config nat64_config(const std::string& interfaces) {
    const std::string yaml = R"(pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  public_prefixes: [203.0.113.0/28]
translation:
  ingress_interfaces: [)";
    return parse_config(yaml + interfaces + "]\n", "t");
}

// The kernel as CONFIG wants it, NAT64 table included, trusting TRUSTED.
ObservedState converged_nat64(const Config& config, std::vector<uint32_t> trusted) {
    const DesiredState want = desired_state(config);
    ObservedState have = xlat64_test::converged(config);
    have.nat64 = want.settings().nat64;
    have.nat64_prefixes = nat64_prefix_entries(*want.nat64);
    have.nat_table = NatTableState::current;
    have.nat_trusted_ifindexes = std::move(trusted);
    return have;
}

using xlat64_test::attached;
using xlat64_test::ethernet;

std::vector<std::string> described(const Plan& plan) {
    std::vector<std::string> out;
    for (const Change& c : plan) {
        out.push_back(describe(c));
    }
    return out;
}

}  // namespace

TEST_CASE("trust: an attached interface stays trusted by its index", "[ingress][trust]") {
    const Config config = nat64_config("eth1");
    ObservedState have = converged_nat64(config, {3});
    have.ingress_links = {attached(ethernet("eth1", 3), 77)};
    have.ingress_attached = {{3, "eth1", 77}};
    CHECK(compute_plan(desired_state(config), have).empty());
}

TEST_CASE("trust: a re-created interface is untrusted first, trusted after its attach",
          "[ingress][trust]") {
    const Config config = nat64_config("eth1");
    // eth1 was ifindex 3 (trusted, program attached); it is now ifindex 9, without the program.
    ObservedState have = converged_nat64(config, {3});
    have.ingress_links = {ethernet("eth1", 9)};
    const Plan plan = compute_plan(desired_state(config), have);
    CHECK(described(plan) ==
          std::vector<std::string>{
              "trust internal sources in table ip xlat64 from ingress interfaces none (was "
              "ifindex 3)",
              "attach the ingress fast path on eth1 (14-byte link-layer header)",
              "trust internal sources in table ip xlat64 from ingress interfaces eth1 (ifindex 9) "
              "(was none)",
          });
    REQUIRE(plan.size() == 3);
    CHECK(std::get<change::SetTrustedIngress>(plan[0]).to.empty());
    CHECK(std::get<change::AttachIngress>(plan[1]).ifindex == 9);
    const auto& trust = std::get<change::SetTrustedIngress>(plan[2]);
    CHECK(trust.table == "xlat64");
    CHECK(trust.to == std::vector<TrustedLink>{{9, "eth1"}});
}

TEST_CASE("trust: an interface that appears is trusted only after its attach", "[ingress][trust]") {
    const Config config = nat64_config("eth1, ppp0");
    ObservedState have = converged_nat64(config, {3});
    IngressLink ppp = ethernet("ppp0", 12);
    ppp.link_type = "ppp";
    ppp.l2_header_len = 0;
    have.ingress_links = {attached(ethernet("eth1", 3), 77), ppp};
    have.ingress_attached = {{3, "eth1", 77}};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 2);
    CHECK(std::get<change::AttachIngress>(plan[0]).ifname == "ppp0");
    const auto& trust = std::get<change::SetTrustedIngress>(plan[1]);
    CHECK(trust.from == std::vector<uint32_t>{3});
    CHECK(trust.to == std::vector<TrustedLink>{{3, "eth1"}, {12, "ppp0"}});
    CHECK(describe(plan[1]) ==
          "trust internal sources in table ip xlat64 from ingress interfaces eth1 (ifindex 3), "
          "ppp0 (ifindex 12) (was ifindex 3)");
}

TEST_CASE("trust: an interface taken out of the list is untrusted before its detach",
          "[ingress][trust]") {
    const Config config = nat64_config("");
    ObservedState have = converged_nat64(config, {3});
    have.ingress_attached = {{3, "eth1", 77}};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 2);
    CHECK(std::get<change::SetTrustedIngress>(plan[0]).to.empty());
    CHECK(std::get<change::DetachIngress>(plan[1]).ifindex == 3);
}

TEST_CASE("trust: an interface renamed away is untrusted before its detach", "[ingress][trust]") {
    const Config config = nat64_config("eth1");
    ObservedState have = converged_nat64(config, {3});
    have.ingress_attached = {{3, "wan", 77}};  // `ip link set eth1 name wan`; no eth1 now
    const Plan plan = compute_plan(desired_state(config), have);
    CHECK(described(plan) ==
          std::vector<std::string>{
              "trust internal sources in table ip xlat64 from ingress interfaces none (was "
              "ifindex 3)",
              "detach the ingress fast path from wan (ifindex 3)",
          });
}

TEST_CASE("trust: a program being replaced keeps its interface trusted", "[ingress][trust]") {
    // Another build's program drops plain IPv4 from the pool too; the replace is atomic.
    const Config config = nat64_config("eth1");
    ObservedState have = converged_nat64(config, {3});
    have.ingress_links = {attached(ethernet("eth1", 3), 77, false)};
    have.ingress_attached = {{3, "eth1", 77}};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 1);
    CHECK(std::get<change::AttachIngress>(plan[0]).replaces_id == 77u);
}

TEST_CASE("trust: an interface whose filter was removed by hand is untrusted until re-attached",
          "[ingress][trust]") {
    const Config config = nat64_config("eth1");
    ObservedState have = converged_nat64(config, {3});
    have.ingress_links = {ethernet("eth1", 3)};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 3);
    CHECK(std::get<change::SetTrustedIngress>(plan[0]).to.empty());
    CHECK(std::holds_alternative<change::AttachIngress>(plan[1]));
    CHECK(std::get<change::SetTrustedIngress>(plan[2]).to == std::vector<TrustedLink>{{3, "eth1"}});
}

TEST_CASE("trust: a table built by the plan trusts what carries the program now",
          "[ingress][trust]") {
    const Config config = nat64_config("eth1, eth2");
    const DesiredState want = desired_state(config);
    ObservedState have = xlat64_test::converged(config);  // no NAT64 state, no table
    have.ingress_links = {attached(ethernet("eth1", 3), 77), ethernet("eth2", 4)};
    have.ingress_attached = {{3, "eth1", 77}};
    const Plan plan = compute_plan(want, have);
    std::optional<change::EnsureNatTable> ensure;
    size_t ensure_at = 0;
    size_t attach_at = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
        if (const auto* e = std::get_if<change::EnsureNatTable>(&plan[i])) {
            ensure = *e;
            ensure_at = i;
        }
        if (std::holds_alternative<change::AttachIngress>(plan[i])) {
            attach_at = i;
        }
    }
    REQUIRE(ensure);
    CHECK(ensure->shape.trusted_device == "xlat64");
    CHECK(ensure->shape.trusted_ifindexes == std::vector<uint32_t>{3});
    CHECK_THAT(describe(plan[ensure_at]),
               Contains("internal sources from device xlat64 and ingress interfaces eth1 "
                        "(ifindex 3))"));
    CHECK(ensure_at < attach_at);
    REQUIRE(attach_at + 2 == plan.size());
    CHECK(std::get<change::SetTrustedIngress>(plan.back()).to ==
          std::vector<TrustedLink>{{3, "eth1"}, {4, "eth2"}});

    // A table of another shape (an earlier version's, trusting names) is rebuilt the same way.
    have.nat_table = NatTableState::other_shape;
    have.nat64 = want.settings().nat64;
    have.nat64_prefixes = nat64_prefix_entries(*want.nat64);
    const Plan rebuild = compute_plan(want, have);
    REQUIRE(rebuild.size() == 3);
    CHECK(std::get<change::EnsureNatTable>(rebuild[0]).shape.trusted_ifindexes ==
          std::vector<uint32_t>{3});
    CHECK(std::get<change::AttachIngress>(rebuild[1]).ifname == "eth2");
    CHECK(std::holds_alternative<change::SetTrustedIngress>(rebuild[2]));
}

TEST_CASE("trust: without NAT64 nothing is trusted or planned for it", "[ingress][trust]") {
    Config config;
    config.pool6 = parse_ipv6_prefix("2001:db8:64::/96");
    config.ingress_interfaces = {"eth1"};
    ObservedState have = xlat64_test::converged(config);
    have.ingress_links = {ethernet("eth1", 9)};
    const Plan plan = compute_plan(desired_state(config), have);
    REQUIRE(plan.size() == 1);
    CHECK(std::holds_alternative<change::AttachIngress>(plan[0]));
}

TEST_CASE("trust: the table's shape names the device, its indexes sorted once",
          "[ingress][trust]") {
    const DesiredState want = desired_state(nat64_config("eth1"));
    const NftNatShape shape = nat_table_shape(want, {{9, "eth1"}, {3, "ppp0"}, {9, "eth1"}});
    CHECK(shape.trusted_device == "xlat64");
    CHECK(shape.trusted_ifindexes == std::vector<uint32_t>{3, 9});
    CHECK(nat_table_shape(want).trusted_ifindexes.empty());
}
