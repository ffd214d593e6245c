#include <catch2/catch.hpp>
#include <stdexcept>

#include "daemon/eamt.h"

using namespace xlat64;

namespace {

EamEntry eam(const char* ipv4, const char* ipv6) {
    return {parse_ipv4_prefix(ipv4).value(), parse_ipv6_prefix(ipv6).value()};
}

std::optional<std::string> v4_to_v6(const Eamt& eamt, const char* addr) {
    auto out = eamt.translate_v4(parse_ipv4_address(addr).value());
    return out ? std::optional(to_string(*out)) : std::nullopt;
}

std::optional<std::string> v6_to_v4(const Eamt& eamt, const char* addr) {
    auto out = eamt.translate_v6(parse_ipv6_address(addr).value());
    return out ? std::optional(to_string(*out)) : std::nullopt;
}

}  // namespace

TEST_CASE("EAMT copies the suffix bits both ways", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("198.51.100.0/24", "2001:db8:1::/120"));
    CHECK(v4_to_v6(eamt, "198.51.100.5") == "2001:db8:1::5");
    CHECK(v4_to_v6(eamt, "198.51.100.255") == "2001:db8:1::ff");
    CHECK(v6_to_v4(eamt, "2001:db8:1::5") == "198.51.100.5");
    CHECK(v6_to_v4(eamt, "2001:db8:1::") == "198.51.100.0");
}

TEST_CASE("EAMT suffixes that do not end on a byte boundary", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("192.0.2.128/25", "2001:db8:2::ff80/121"));
    CHECK(v4_to_v6(eamt, "192.0.2.129") == "2001:db8:2::ff81");
    CHECK(v6_to_v4(eamt, "2001:db8:2::ffff") == "192.0.2.255");
    CHECK_FALSE(v4_to_v6(eamt, "192.0.2.127"));
    CHECK_FALSE(v6_to_v4(eamt, "2001:db8:2::ff7f"));
}

TEST_CASE("EAMT host and whole-space entries", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("192.0.2.1/32", "2001:db8::1:1/128"));
    eamt.add(eam("0.0.0.0/0", "2001:db8:ffff::/96"));
    CHECK(v4_to_v6(eamt, "192.0.2.1") == "2001:db8::1:1");
    CHECK(v6_to_v4(eamt, "2001:db8::1:1") == "192.0.2.1");
    CHECK(v4_to_v6(eamt, "203.0.113.9") == "2001:db8:ffff::cb00:7109");
    CHECK(v6_to_v4(eamt, "2001:db8:ffff::cb00:7109") == "203.0.113.9");
}

TEST_CASE("EAMT takes the longest match in both directions", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("198.51.100.0/24", "2001:db8:1::/120"));
    eamt.add(eam("198.51.100.16/28", "2001:db8:9::/124"));  // nested in the /24 on IPv4
    eamt.add(eam("203.0.113.7/32", "2001:db8:1::7/128"));   // nested in the /120 on IPv6
    REQUIRE(eamt.size() == 3);

    CHECK(v4_to_v6(eamt, "198.51.100.17") == "2001:db8:9::1");
    CHECK(v4_to_v6(eamt, "198.51.100.15") == "2001:db8:1::f");
    CHECK(v4_to_v6(eamt, "198.51.100.32") == "2001:db8:1::20");
    CHECK(v6_to_v4(eamt, "2001:db8:9::1") == "198.51.100.17");

    CHECK(v6_to_v4(eamt, "2001:db8:1::7") == "203.0.113.7");
    CHECK(v6_to_v4(eamt, "2001:db8:1::8") == "198.51.100.8");
    CHECK(v4_to_v6(eamt, "203.0.113.7") == "2001:db8:1::7");
}

TEST_CASE("EAMT misses", "[eamt]") {
    Eamt empty;
    CHECK_FALSE(v4_to_v6(empty, "198.51.100.1"));
    CHECK_FALSE(v6_to_v4(empty, "2001:db8:1::1"));

    Eamt eamt;
    eamt.add(eam("198.51.100.0/24", "2001:db8:1::/120"));
    CHECK_FALSE(v4_to_v6(eamt, "198.51.101.1"));
    CHECK_FALSE(v6_to_v4(eamt, "2001:db8:1::100"));
    CHECK_FALSE(v6_to_v4(eamt, "2001:db8:2::1"));
}

TEST_CASE("EAMT rejects bad entries and stays unchanged", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("198.51.100.0/24", "2001:db8:1::/120"));

    SECTION("the same IPv4 prefix twice") {
        CHECK_THROWS_AS(eamt.add(eam("198.51.100.0/24", "2001:db8:5::/120")),
                        std::invalid_argument);
    }
    SECTION("the same IPv6 prefix twice") {
        CHECK_THROWS_AS(eamt.add(eam("203.0.113.0/24", "2001:db8:1::/120")), std::invalid_argument);
    }
    SECTION("different suffix lengths") {
        CHECK_THROWS_AS(eamt.add(eam("203.0.113.0/24", "2001:db8:5::/64")), std::invalid_argument);
    }
    SECTION("host bits set") {
        EamEntry entry = eam("203.0.113.0/24", "2001:db8:5::/120");
        entry.ipv4.addr[3] = 1;
        CHECK_THROWS_AS(eamt.add(entry), std::invalid_argument);
    }
    CHECK(eamt.size() == 1);
    CHECK(v4_to_v6(eamt, "198.51.100.9") == "2001:db8:1::9");
    CHECK_FALSE(v6_to_v4(eamt, "2001:db8:5::9"));
    CHECK_FALSE(v4_to_v6(eamt, "203.0.113.9"));
}

TEST_CASE("EAMT keeps entries in the order they were added", "[eamt]") {
    Eamt eamt;
    eamt.add(eam("203.0.113.0/24", "2001:db8:3::/120"));
    eamt.add(eam("198.51.100.0/24", "2001:db8:1::/120"));
    REQUIRE(eamt.entries().size() == 2);
    CHECK(eamt.entries()[0] == eam("203.0.113.0/24", "2001:db8:3::/120"));
    CHECK(eamt.entries()[1] == eam("198.51.100.0/24", "2001:db8:1::/120"));
}
