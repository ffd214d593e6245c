#include <catch2/catch.hpp>
#include <unordered_set>

#include "daemon/port_blocks.h"

using namespace xlat64;

namespace {

Nat64Config config(std::vector<std::string> prefixes, uint8_t subscriber_length,
                   std::vector<std::string> publics, uint32_t block_size, uint32_t hosts = 1) {
    Nat64Config c;
    for (const auto& p : prefixes) {
        c.prefixes.push_back(*parse_ipv6_prefix(p));
    }
    for (const auto& p : publics) {
        c.public_prefixes.push_back(*parse_ipv4_prefix(p));
    }
    c.subscriber_length = subscriber_length;
    c.block_size = block_size;
    c.hosts_per_subscriber = hosts;
    return c;
}

Ipv4Address v4(const char* text) {
    return *parse_ipv4_address(text);
}
Ipv6Address v6(const char* text) {
    return *parse_ipv6_address(text);
}

}  // namespace

TEST_CASE("port blocks: deterministic mapping, first and last subscriber", "[port_blocks]") {
    // Two admitted prefixes: 2^(56-54) + 2^(56-55) = 6 subscribers; 3 addresses x 3 blocks.
    auto c = config({"2001:db8:100::/54", "2001:db8:200::/55"}, 56,
                    {"203.0.113.1/32", "203.0.113.8/31"}, 16384, 4);
    DeterministicMap map(c);
    REQUIRE(map.count() == 6);
    REQUIRE(map.blocks().count() == 9);

    auto first = map.mapping(0);
    CHECK(to_string(first.subscriber) == "2001:db8:100::/56");
    CHECK(to_string(first.internal) == "100.64.0.0/30");
    CHECK(first.block == PortBlock{v4("203.0.113.1"), 1024, 17407});

    // Address-major: the blocks of the first address, then the next address.
    CHECK(map.mapping(1).block == PortBlock{v4("203.0.113.1"), 17408, 33791});
    CHECK(map.mapping(2).block == PortBlock{v4("203.0.113.1"), 33792, 50175});
    CHECK(map.mapping(3).block == PortBlock{v4("203.0.113.8"), 1024, 17407});
    CHECK(to_string(map.mapping(3).subscriber) == "2001:db8:100:300::/56");
    CHECK(to_string(map.mapping(4).subscriber) == "2001:db8:200::/56");

    auto last = map.mapping(5);
    CHECK(to_string(last.subscriber) == "2001:db8:200:100::/56");
    CHECK(to_string(last.internal) == "100.64.0.20/30");
    CHECK(last.block == PortBlock{v4("203.0.113.8"), 33792, 50175});
    // The last block of the last address; ports 50176-65535 are left over (4 x 16384 > 64512).
    CHECK(map.blocks().block(8) == PortBlock{v4("203.0.113.9"), 33792, 50175});
    CHECK(map.blocks().index_of(v4("203.0.113.9"), 50175) == 8u);
    CHECK_FALSE(map.blocks().index_of(v4("203.0.113.9"), 50176));

    CHECK(map.for_subscriber(v6("2001:db8:200:1ff::1"))->index == 5);
    CHECK_FALSE(map.for_subscriber(v6("2001:db8:300::1")));
    CHECK(map.subscribers().index_of_internal(v4("100.64.0.23")) == 5u);
    CHECK_FALSE(map.subscribers().index_of_internal(v4("100.64.0.24")));
    CHECK_FALSE(map.subscribers().index_of_internal(v4("100.63.255.255")));
}

TEST_CASE("port blocks: trace is the inverse, including boundaries", "[port_blocks]") {
    auto c = config({"2001:db8:100::/48"}, 56, {"203.0.113.0/28"}, 2048);
    DeterministicMap map(c);  // 256 subscribers, 16 x 31 = 496 blocks
    CHECK(map.trace(v4("203.0.113.0"), 1024)->index == 0);
    CHECK(map.trace(v4("203.0.113.0"), 3071)->index == 0);
    CHECK(map.trace(v4("203.0.113.0"), 3072)->index == 1);
    CHECK(map.trace(v4("203.0.113.1"), 1024)->index == 31);
    CHECK(map.trace(v4("203.0.113.7"), 1024 + 8 * 2048)->index == 7 * 31 + 8);
    CHECK_FALSE(map.trace(v4("203.0.113.0"), 1023));   // below the range
    CHECK_FALSE(map.trace(v4("203.0.113.0"), 65000));  // left-over ports above the last block
    CHECK_FALSE(map.trace(v4("203.0.113.16"), 2000));  // not a public address
    CHECK_FALSE(map.trace(v4("203.0.113.15"), 1024));  // block 465: nobody's (256 subscribers)
    for (uint64_t i = 0; i < map.count(); ++i) {
        auto m = map.mapping(i);
        CHECK(map.trace(m.block.address, m.block.first_port)->index == i);
        CHECK(map.trace(m.block.address, m.block.last_port)->index == i);
        CHECK(map.for_subscriber(m.subscriber.addr)->index == i);
    }
}

TEST_CASE("port blocks: a million subscribers, all distinct", "[port_blocks]") {
    // 2^20 /64 subscribers; 768 addresses x 2016 blocks of 32 ports = 1548288 blocks.
    auto c = config({"2001:db8:4000::/44"}, 64,
                    {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}, 32);
    DeterministicMap map(c);
    REQUIRE(map.count() == (1u << 20));
    std::unordered_set<uint64_t> blocks;  // address << 16 | first port
    std::unordered_set<uint32_t> internals;
    blocks.reserve(map.count());
    internals.reserve(map.count());
    bool all_inverse = true;
    for (uint64_t i = 0; i < map.count(); ++i) {
        auto m = map.mapping(i);
        uint64_t key = uint64_t{m.block.address[0]} << 40 | uint64_t{m.block.address[1]} << 32 |
                       uint64_t{m.block.address[2]} << 24 | uint64_t{m.block.address[3]} << 16 |
                       m.block.first_port;
        blocks.insert(key);
        internals.insert(uint32_t{m.internal.addr[1]} << 16 | m.internal.addr[2] << 8 |
                         m.internal.addr[3]);
        all_inverse = all_inverse && map.trace(m.block.address, m.block.last_port)->index == i &&
                      map.subscribers().index_of(m.subscriber.addr) == i;
    }
    CHECK(all_inverse);
    CHECK(blocks.size() == map.count());     // no two subscribers share a block
    CHECK(internals.size() == map.count());  // nor an internal address
}

TEST_CASE("port blocks: dynamic allocation, release, idle expiry, exhaustion", "[port_blocks]") {
    DynamicAllocator alloc(3, 300);
    CHECK(alloc.acquire(100, 0) == 0u);
    CHECK(alloc.acquire(200, 10) == 1u);
    CHECK(alloc.acquire(100, 20) == 0u);  // already leased: same block, refreshed
    CHECK(alloc.acquire(300, 30) == 2u);
    CHECK_FALSE(alloc.acquire(400, 40));  // exhausted; others keep theirs
    CHECK(alloc.lease_of(200)->block == 1u);
    CHECK(alloc.free() == 0);

    CHECK(alloc.release(200));
    CHECK_FALSE(alloc.release(200));
    CHECK(alloc.acquire(400, 50) == 1u);  // the lowest free block

    CHECK(alloc.touch(300, 400));
    auto expired = alloc.expire(350);  // 100 (used at 20) and 400 (at 50) are idle >= 300 s
    REQUIRE(expired.size() == 2);
    CHECK(expired[0].subscriber == 100);
    CHECK(expired[1].subscriber == 400);
    CHECK(alloc.leased() == 1);
    CHECK(alloc.acquire(500, 400) == 0u);
}

TEST_CASE("port blocks: dynamic state round-trips as plain data", "[port_blocks]") {
    DynamicAllocator alloc(10, 60);
    for (uint64_t s = 0; s < 6; ++s) {
        alloc.acquire(s, static_cast<int64_t>(s));
    }
    alloc.release(1);
    alloc.release(4);
    DynamicState saved = alloc.state();
    REQUIRE(saved.leases.size() == 4);

    DynamicAllocator restored(10, 60, saved);
    CHECK(restored.state() == saved);
    CHECK(restored.acquire(50, 100) == 1u);
    CHECK(restored.acquire(51, 100) == 4u);
    CHECK(restored.acquire(52, 100) == 6u);
    CHECK(restored.lease_of(5)->block == 5u);
}
