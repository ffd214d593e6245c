#include <catch2/catch.hpp>

#include "config/ip_address.h"

using namespace xlat64;

TEST_CASE("IPv4 addresses parse and format", "[ip_address]") {
    CHECK(parse_ipv4_address("192.0.2.33") == Ipv4Address{192, 0, 2, 33});
    CHECK(parse_ipv4_address("0.0.0.0") == Ipv4Address{});
    CHECK(to_string(Ipv4Address{255, 255, 255, 255}) == "255.255.255.255");
    for (const char* bad : {"", "192.0.2", "192.0.2.256", "192.0.2.1.", " 192.0.2.1", "1.2.3.4/",
                            "2001:db8::1", "192.0.2.01x"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv4_address(bad));
    }
}

TEST_CASE("IPv6 addresses parse and format canonically (RFC 5952)", "[ip_address]") {
    CHECK(to_string(parse_ipv6_address("2001:0DB8:0000:0000:0000:0000:0000:0001").value()) ==
          "2001:db8::1");
    CHECK(to_string(parse_ipv6_address("::").value()) == "::");
    CHECK(to_string(parse_ipv6_address("2001:db8:0:0:1:0:0:1").value()) == "2001:db8::1:0:0:1");
    CHECK(to_string(parse_ipv6_address("64:ff9b::192.0.2.33").value()) == "64:ff9b::c000:221");
    CHECK(parse_ipv6_address("::1").value()[15] == 1);
    std::string too_long(100, '0');
    for (const char* bad : {"", "2001:db8:zz::", "2001:db8::1::2", "1:2:3:4:5:6:7:8:9",
                            ":::", "192.0.2.1", "2001:db8::/32", too_long.c_str()}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv6_address(bad));
    }
}

TEST_CASE("prefixes parse with their length and refuse host bits", "[ip_address]") {
    auto v4 = parse_ipv4_prefix("198.51.100.0/24");
    REQUIRE(v4);
    CHECK(v4->len == 24);
    CHECK(to_string(*v4) == "198.51.100.0/24");
    CHECK(parse_ipv4_prefix("192.0.2.1") == Ipv4Prefix{{192, 0, 2, 1}, 32});
    CHECK(parse_ipv4_prefix("0.0.0.0/0") == Ipv4Prefix{{}, 0});
    CHECK(to_string(parse_ipv6_prefix("2001:db8:64::/96").value()) == "2001:db8:64::/96");
    CHECK(parse_ipv6_prefix("2001:db8::1")->len == 128);

    for (const char* bad : {"198.51.100.1/24", "198.51.100.0/33", "198.51.100.0/", "198.51.100.0/a",
                            "198.51.100.0/-1", "198.51.100.0/24/", "/24", "198.51.100.0/+24"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv4_prefix(bad));
    }
    for (const char* bad : {"2001:db8::1/64", "2001:db8::/129", "2001:db8::/", "2001:db8::/ 64"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv6_prefix(bad));
    }
}

TEST_CASE("mask_address, contains and overlaps", "[ip_address]") {
    Ipv6Address addr = parse_ipv6_address("2001:db8:ffff:ffff::1").value();
    CHECK(to_string(mask_address(addr, 36)) == "2001:db8:f000::");
    CHECK(to_string(mask_address(addr, 0)) == "::");
    CHECK(mask_address(addr, 128) == addr);
    CHECK(mask_address(Ipv4Address{192, 0, 2, 255}, 25) == Ipv4Address{192, 0, 2, 128});

    auto p24 = parse_ipv4_prefix("198.51.100.0/24").value();
    auto p28 = parse_ipv4_prefix("198.51.100.16/28").value();
    auto other = parse_ipv4_prefix("198.51.101.0/24").value();
    CHECK(contains(p24, Ipv4Address{198, 51, 100, 200}));
    CHECK_FALSE(contains(p24, Ipv4Address{198, 51, 101, 0}));
    CHECK(overlaps(p24, p28));
    CHECK(overlaps(p28, p24));
    CHECK_FALSE(overlaps(p24, other));
    CHECK(overlaps(parse_ipv6_prefix("2001:db8:64::/96").value(),
                   parse_ipv6_prefix("2001:db8:64::/120").value()));
    CHECK_FALSE(overlaps(parse_ipv6_prefix("2001:db8:64::/96").value(),
                         parse_ipv6_prefix("2001:db8:65::/120").value()));
}
