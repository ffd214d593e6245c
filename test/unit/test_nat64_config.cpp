#include <catch2/catch.hpp>

#include "config/config.h"
#include "config_issues.h"

using namespace xlat64;
using namespace xlat64::testing;
using Catch::Matchers::Contains;

namespace {

// A section with PREFIXES cut into /56 subscribers, PUBLICS, and EXTRA lines appended; valid as
// given (64 subscribers, 256 x 31 blocks).
std::string nat64(const std::string& extra, const std::string& prefixes = "[2001:db8:100::/50]",
                  const std::string& publics = "[203.0.113.0/24]") {
    return "nat64:\n  prefixes: " + prefixes +
           "\n  subscriber_length: 56\n  public_prefixes: " + publics + "\n" + extra;
}

}  // namespace

TEST_CASE("nat64: absent section is no NAT64", "[nat64_config]") {
    CHECK_FALSE(parse_config("pool6: 2001:db8:64::/96\n", "t.yaml").nat64);
}

TEST_CASE("nat64: defaults and a full section", "[nat64_config]") {
    Config c = parse_config(nat64(""), "t.yaml");
    REQUIRE(c.nat64);
    CHECK(c.nat64->prefixes == std::vector{*parse_ipv6_prefix("2001:db8:100::/50")});
    CHECK(c.nat64->subscriber_length == 56);
    CHECK(c.nat64->hosts_per_subscriber == 1);
    CHECK(c.nat64->internal_pool == *parse_ipv4_prefix("100.64.0.0/10"));
    CHECK(c.nat64->ports == PortRange{1024, 65535});
    CHECK(c.nat64->block_size == 2048);
    CHECK(c.nat64->mode == Nat64Mode::deterministic);
    CHECK(c.nat64->table == "xlat64");
    CHECK(nat64_subscriber_count(*c.nat64) == 64);
    CHECK(nat64_blocks_per_address(*c.nat64) == 31);  // 64512 ports, 1024 left over
    CHECK(nat64_block_count(*c.nat64) == 256 * 31);

    Config full = parse_config(R"(nat64:
  prefixes: [2001:db8:100::/120, 2001:db8:200::/124]
  subscriber_length: 128
  hosts_per_subscriber: 1
  internal_pool: 10.64.0.0/16
  public_prefixes: [203.0.113.0/28, 198.51.100.7/32]
  ports: 2000-3999
  block_size: 64
  mode: dynamic
  idle_timeout: 600
  table: cgn
)",
                               "t.yaml");
    REQUIRE(full.nat64);
    CHECK(full.nat64->mode == Nat64Mode::dynamic);
    CHECK(full.nat64->idle_timeout_seconds == 600);
    CHECK(full.nat64->ports == PortRange{2000, 3999});
    CHECK(full.nat64->public_prefixes.size() == 2);
    CHECK(nat64_public_address_count(*full.nat64) == 17);
    CHECK(full.nat64->table == "cgn");
}

TEST_CASE("nat64: deterministic capacity is checked and says by how much", "[nat64_config]") {
    // 2^(56-40) = 65536 subscribers; one /24 gives 256 x 31 = 7936 blocks.
    auto issue = only_issue(nat64("", "[2001:db8:100::/40]"));
    CHECK(issue.key == "nat64.public_prefixes");
    CHECK(issue.line == 4);
    CHECK_THAT(issue.message, Contains("65536 subscribers but 7936 port blocks"));
    CHECK_THAT(issue.message, Contains("256 public addresses x 31 blocks of 2048 ports"));
    CHECK_THAT(issue.message, Contains("outnumber blocks by 57600"));

    auto tight = nat64("  block_size: 16384\n", "[2001:db8:100::/53]", "[203.0.113.0/30]");
    CHECK_NOTHROW(parse_config(tight, "t"));  // 8 subscribers, 4 x 3 = 12 blocks
    auto over = nat64("  block_size: 32768\n", "[2001:db8:100::/52]", "[203.0.113.0/30]");
    CHECK_THAT(only_issue(over).message, Contains("outnumber blocks by 12"));  // 16 vs 4

    // Dynamic mode may oversubscribe.
    CHECK_NOTHROW(parse_config(nat64("  mode: dynamic\n", "[2001:db8:100::/40]"), "t"));
}

TEST_CASE("nat64: the internal pool must hold every subscriber's hosts", "[nat64_config]") {
    auto issue = only_issue(nat64("  internal_pool: 100.64.0.0/28\n  hosts_per_subscriber: 4\n"));
    CHECK(issue.key == "nat64.internal_pool");
    CHECK(issue.line == 5);
    CHECK(issue.column == 18);
    CHECK_THAT(issue.message, Contains("100.64.0.0/28 has 16 addresses but 64 subscribers x 4 "
                                       "hosts_per_subscriber need 256"));

    auto outside = only_issue(nat64("  internal_pool: 192.0.2.0/24\n"));
    CHECK(outside.key == "nat64.internal_pool");
    CHECK_THAT(outside.message, Contains("not inside 100.64.0.0/10 (RFC 6598) or RFC 1918"));
    CHECK_NOTHROW(parse_config(nat64("  internal_pool: 172.16.0.0/12\n"), "t"));

    auto odd = only_issue(nat64("  hosts_per_subscriber: 3\n"));
    CHECK(odd.key == "nat64.hosts_per_subscriber");
    CHECK_THAT(odd.message, Contains("not a power of two"));

    auto clat = only_issue(R"(nat64:
  prefixes: [2001:db8:1::/120]
  subscriber_length: 128
  hosts_per_subscriber: 2
  public_prefixes: [203.0.113.0/24]
)");
    CHECK(clat.key == "nat64.hosts_per_subscriber");
    CHECK_THAT(clat.message, Contains("a /128 subscriber has 1 IPv6 address(es)"));

    auto clash = issues_of(nat64("", "[2001:db8:100::/50]", "[100.64.1.0/24]"));
    REQUIRE(!clash.empty());
    CHECK_THAT(clash.front().message, Contains("overlaps internal_pool 100.64.0.0/10"));
}

TEST_CASE("nat64: block size and port range rules", "[nat64_config]") {
    auto not_pow2 = only_issue(nat64("  block_size: 1000\n"));
    CHECK(not_pow2.key == "nat64.block_size");
    CHECK_THAT(not_pow2.message,
               Contains("expected a power of two from 2 to 32768 (the size of ports "
                        "1024-65535), found 1000"));
    CHECK_NOTHROW(parse_config(
        nat64("  ports: 1024-2047\n  block_size: 1024\n", "[2001:db8:100::/56]"), "t"));
    CHECK_THAT(
        only_issue(nat64("  ports: 1024-2047\n  block_size: 4096\n", "[2001:db8::/56]")).message,
        Contains("from 2 to 1024"));

    auto low = only_issue(nat64("  ports: 80-65535\n"));
    CHECK(low.key == "nat64.ports");
    CHECK_THAT(low.message, Contains("well-known ports"));
    CHECK_THAT(only_issue(nat64("  ports: 5000-4000\n")).message,
               Contains("expected a port range FIRST-LAST within 1024-65535"));
    CHECK_THAT(only_issue(nat64("  ports: 1024-70000\n")).message, Contains("found '1024-70000'"));
}

TEST_CASE("nat64: prefixes, keys, mode", "[nat64_config]") {
    auto shorter = only_issue(nat64("", "[2001:db8:100::/60]"));
    CHECK(shorter.key == "nat64.subscriber_length");
    CHECK_THAT(shorter.message, Contains("is shorter than prefixes[0] 2001:db8:100::/60"));

    auto overlap = only_issue(nat64("", "[2001:db8:100::/50, 2001:db8:100::/52]"));
    CHECK(overlap.key == "nat64.prefixes[1]");
    CHECK_THAT(overlap.message, Contains("overlaps 2001:db8:100::/50 (nat64.prefixes[0])"));

    auto typo = only_issue(nat64("  block-size: 64\n"));
    CHECK(typo.key == "nat64.block-size");
    CHECK_THAT(typo.message, Contains("unknown key 'block-size'; valid keys here: prefixes,"));

    auto mode = only_issue(nat64("  mode: random\n"));
    CHECK(mode.key == "nat64.mode");
    CHECK_THAT(mode.message, Contains("expected deterministic (RFC 7422"));

    auto many_hosts =
        only_issue(nat64("  hosts_per_subscriber: 512\n  internal_pool: 10.0.0.0/8\n"));
    CHECK(many_hosts.key == "nat64.hosts_per_subscriber");
    CHECK_THAT(many_hosts.message, Contains("more than 256"));

    // idle_timeout applies to hosts in both modes.
    CHECK(parse_config(nat64("  idle_timeout: 60\n"), "t").nat64->idle_timeout_seconds == 60);

    auto missing = issues_of("nat64:\n  subscriber_length: 56\n");
    REQUIRE(missing.size() == 2);
    CHECK_THAT(missing[0].message, Contains("has no prefixes key"));
    CHECK_THAT(missing[1].message, Contains("has no public_prefixes key"));

    auto host_bits = only_issue(nat64("", "[2001:db8:100::1/50]"));
    CHECK(host_bits.key == "nat64.prefixes[0]");

    auto table = only_issue(nat64("  table: 'a b'\n"));
    CHECK(table.key == "nat64.table");
    CHECK_THAT(table.message, Contains("is not a table name"));

    auto not_map = only_issue("nat64: yes\n");
    CHECK(not_map.key == "nat64");
    CHECK_THAT(not_map.message, Contains("expected a map with keys prefixes"));
}

TEST_CASE("nat64: the message format is FILE:LINE:COL: KEY: MESSAGE", "[nat64_config]") {
    try {
        parse_config(nat64("  block_size: 3\n"), "router.yaml");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK_THAT(e.what(),
                   Contains("router.yaml:5:15: nat64.block_size: expected a power of two"));
    }
}

TEST_CASE("nat64: session_counters", "[nat64_config]") {
    CHECK(parse_config(nat64(""), "t.yaml").nat64->session_counters);
    CHECK_FALSE(
        parse_config(nat64("  session_counters: false\n"), "t.yaml").nat64->session_counters);
    auto issue = only_issue(nat64("  session_counters: sometimes\n"));
    CHECK(issue.key == "nat64.session_counters");
    CHECK(issue.message == "expected true or false, found 'sometimes'");
}
