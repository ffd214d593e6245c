#include <catch2/catch.hpp>
#include <stdexcept>

#include "daemon/rfc6052.h"

using namespace xlat64;

namespace {

Ipv6Prefix v6_prefix(const char* text) {
    return parse_ipv6_prefix(text).value();
}
Ipv6Address v6(const char* text) {
    return parse_ipv6_address(text).value();
}
Ipv4Address v4(const char* text) {
    return parse_ipv4_address(text).value();
}

}  // namespace

// RFC 6052 section 2.4, the table of 192.0.2.33 embedded at every allowed prefix length.
TEST_CASE("RFC 6052 section 2.4 examples embed and extract at every length", "[rfc6052]") {
    auto [prefix, embedded] = GENERATE(table<const char*, const char*>({
        {"2001:db8::/32", "2001:db8:c000:221::"},
        {"2001:db8:100::/40", "2001:db8:1c0:2:21::"},
        {"2001:db8:122::/48", "2001:db8:122:c000:2:2100::"},
        {"2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"},
        {"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"},
        {"2001:db8:122:344::/96", "2001:db8:122:344::c000:221"},
        {"64:ff9b::/96", "64:ff9b::c000:221"},
    }));
    CAPTURE(prefix);
    CHECK(to_string(rfc6052_embed(v6_prefix(prefix), v4("192.0.2.33"))) == embedded);
    auto extracted = rfc6052_extract(v6_prefix(prefix), v6(embedded));
    REQUIRE(extracted);
    CHECK(to_string(*extracted) == "192.0.2.33");
}

TEST_CASE("RFC 6052 round trip keeps the u octet zero", "[rfc6052]") {
    auto len = GENERATE(32, 40, 48, 56, 64, 96);
    Ipv6Prefix pool6{v6("2001:db8:122:344::"), static_cast<uint8_t>(len)};
    pool6.addr = mask_address(pool6.addr, pool6.len);
    Ipv4Address addr = v4("255.255.255.255");
    Ipv6Address out = rfc6052_embed(pool6, addr);
    CHECK(out[8] == 0);
    CHECK(rfc6052_extract(pool6, out) == addr);
}

TEST_CASE("RFC 6052 extract refuses addresses outside the prefix", "[rfc6052]") {
    CHECK_FALSE(rfc6052_extract(v6_prefix("2001:db8:64::/96"), v6("2001:db8:65::c000:221")));
    CHECK_FALSE(rfc6052_extract(v6_prefix("64:ff9b::/96"), v6("64:ff9b:1::c000:221")));
    CHECK_FALSE(rfc6052_extract(v6_prefix("2001:db8::/32"), v6("2001:db9:c000:221::")));
    CHECK_FALSE(rfc6052_extract(v6_prefix("2001:db8:100::/40"), v6("2001:db8:200:2:21::")));
}

TEST_CASE("RFC 6052 extract ignores the u octet and suffix a peer may set", "[rfc6052]") {
    auto extracted = rfc6052_extract(v6_prefix("2001:db8::/32"), v6("2001:db8:c000:221:ff00::1"));
    REQUIRE(extracted);
    CHECK(to_string(*extracted) == "192.0.2.33");
}

TEST_CASE("RFC 6052 lengths outside section 2.2 are a caller's bug", "[rfc6052]") {
    STATIC_REQUIRE(rfc6052_prefix_length_allowed(96));
    STATIC_REQUIRE_FALSE(rfc6052_prefix_length_allowed(80));
    for (unsigned len = 0; len <= 128; ++len) {
        bool allowed = len == 32 || len == 40 || len == 48 || len == 56 || len == 64 || len == 96;
        CHECK(rfc6052_prefix_length_allowed(len) == allowed);
    }
    Ipv6Prefix bad = v6_prefix("2001:db8::/80");
    CHECK_THROWS_AS(rfc6052_embed(bad, v4("192.0.2.1")), std::invalid_argument);
    CHECK_THROWS_AS(rfc6052_extract(bad, v6("2001:db8::1")), std::invalid_argument);
}
