// NftNatTable against the real kernel. The binary moves itself into a new network namespace
// before any test runs, so every table here lives and dies with that namespace: nothing is ever
// created in the namespace that started the test. nft(8) is run only to look at the result.
#define CATCH_CONFIG_RUNNER
#include <sched.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "netlink/nft_nat_table.h"

using namespace xlat64;
using Catch::Matchers::Contains;
using json = nlohmann::json;

namespace {

const Ipv4Prefix kPool{{100, 64, 0, 0}, 10};

// Output (stdout and stderr) of a shell command; fails the test unless it exits 0.
std::string run(const std::string& command, bool must_succeed = true) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(("{ " + command + "\n} 2>&1").c_str(), "r"),
                                               pclose);
    REQUIRE(pipe);
    std::string out;
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe.get())) > 0) {
        out.append(buffer, n);
    }
    int status = pclose(pipe.release());
    if (must_succeed) {
        INFO(command << "\n" << out);
        REQUIRE(status == 0);
    }
    return out;
}

// The operator's own table, with rules and a set, which xlat64 must never change.
const char* kOperatorTable = R"(table inet filter {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 192.0.2.0/28 }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related counter accept
		ip saddr @blocked counter drop
		ip daddr 100.64.0.0/10 counter accept
	}
}
)";

struct Namespace {
    // Each test starts from an empty ruleset plus the operator's table.
    Namespace() {
        run("nft flush ruleset");
        run("nft -f - <<'EOF'\n" + std::string(kOperatorTable) + "EOF");
    }
    std::string operator_table() { return run("nft list table inet filter"); }
};

NatBlock block(const char* internal, const char* address, uint16_t first, uint16_t last) {
    return {*parse_ipv4_prefix(internal), *parse_ipv4_address(address), first, last};
}

std::vector<NatBlock> listed(NftNatTable& nat) {
    std::vector<NatBlock> out;
    for (const NatBlockCounter& c : nat.read_blocks()) {
        out.push_back(c.block);
    }
    return out;
}

// nft -j output without what changes from run to run (handles, nft's version).
json table_json(const std::string& name) {
    json doc = json::parse(run("nft -j list table ip " + name));
    json out = json::array();
    for (json item : doc["nftables"]) {
        if (item.contains("metainfo")) {
            continue;
        }
        for (auto& [kind, body] : item.items()) {
            body.erase("handle");
        }
        out.push_back(item);
    }
    return out;
}

const json kExpectedTable = json::parse(R"([
  {"table": {"family": "ip", "name": "xlat64"}},
  {"map": {"family": "ip", "name": "blocks", "table": "xlat64", "type": "ipv4_addr",
           "map": "ipv4_addr . inet_service", "flags": ["interval"],
           "elem": [
             [{"elem": {"val": {"prefix": {"addr": "100.64.0.0", "len": 30}},
                        "counter": {"packets": 0, "bytes": 0}}},
              {"concat": ["203.0.113.1", {"range": [1024, 2047]}]}],
             [{"elem": {"val": {"prefix": {"addr": "100.64.0.4", "len": 30}},
                        "counter": {"packets": 0, "bytes": 0}}},
              {"concat": ["203.0.113.2", {"range": [1024, 2047]}]}],
             [{"elem": {"val": {"prefix": {"addr": "100.64.0.8", "len": 29}},
                        "counter": {"packets": 0, "bytes": 0}}},
              {"concat": ["203.0.113.1", {"range": [2048, 3071]}]}]],
           "stmt": [{"counter": null}]}},
  {"chain": {"family": "ip", "table": "xlat64", "name": "postrouting", "type": "nat",
             "hook": "postrouting", "prio": 100, "policy": "accept"}},
  {"rule": {"family": "ip", "table": "xlat64", "chain": "postrouting",
            "expr": [{"snat": {"family": "ip", "addr": {"map": {
                "key": {"payload": {"protocol": "ip", "field": "saddr"}},
                "data": "@blocks"}}}}]}},
  {"rule": {"family": "ip", "table": "xlat64", "chain": "postrouting",
            "expr": [{"match": {"op": "==",
                                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                "right": {"prefix": {"addr": "100.64.0.0", "len": 10}}}},
                     {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}
])");

const std::vector<NatBlock> kBlocks = {
    block("100.64.0.0/30", "203.0.113.1", 1024, 2047),
    block("100.64.0.4/30", "203.0.113.2", 1024, 2047),
    block("100.64.0.8/29", "203.0.113.1", 2048, 3071),
};

}  // namespace

TEST_CASE("nat: creates exactly the expected table, and only it", "[nat]") {
    Namespace ns;
    std::string operator_before = ns.operator_table();
    std::string ruleset_before = run("nft list ruleset");
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kPool);
    CHECK(nat.observe() == NftNatTable::State::absent);
    CHECK(nat.ensure());
    CHECK(nat.observe() == NftNatTable::State::ours);
    CHECK(ns.operator_table() == operator_before);

    nat.replace_blocks(kBlocks);
    CHECK(table_json("xlat64") == kExpectedTable);
    CHECK_THAT(run("nft list table ip xlat64"),
               Contains("comment \"managed by xlat64d; remove with xlat64d --teardown\""));
    CHECK(listed(nat) == kBlocks);
    CHECK(ns.operator_table() == operator_before);

    // Counters are readable and start at zero (the e2e test drives traffic through them).
    for (const NatBlockCounter& c : nat.read_blocks()) {
        CHECK(c.sessions == 0);
        CHECK(c.bytes == 0);
    }
    CHECK(nat.unmapped_drops() == 0);
    auto one = nat.read_block(kBlocks[1].internal);
    REQUIRE(one);
    CHECK(one->block == kBlocks[1]);
    CHECK(one->sessions == 0);
    CHECK_FALSE(nat.read_block(*parse_ipv4_prefix("100.64.1.0/30")));

    CHECK_FALSE(nat.ensure());  // adopted as it is: nothing changes
    CHECK(table_json("xlat64") == kExpectedTable);

    CHECK(nat.remove());
    CHECK(nat.observe() == NftNatTable::State::absent);
    CHECK_FALSE(nat.remove());
    CHECK(ns.operator_table() == operator_before);
    CHECK(run("nft list ruleset") == ruleset_before);
}

TEST_CASE("nat: replace, add and remove blocks, each batch all or nothing", "[nat]") {
    Namespace ns;
    std::string operator_before = ns.operator_table();
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kPool);
    nat.ensure();
    nat.replace_blocks(kBlocks);

    std::vector<NatBlock> next = {block("100.64.0.0/30", "203.0.113.9", 4096, 5119),
                                  block("100.64.1.0/24", "203.0.113.1", 1024, 1027)};
    nat.replace_blocks(next);
    CHECK(listed(nat) == next);

    nat.add_blocks({block("100.64.0.4/30", "203.0.113.2", 1024, 2047)});
    CHECK(listed(nat).size() == 3);
    nat.remove_blocks({block("100.64.0.0/30", "203.0.113.9", 4096, 5119)});
    CHECK(listed(nat) == std::vector{block("100.64.0.4/30", "203.0.113.2", 1024, 2047),
                                     block("100.64.1.0/24", "203.0.113.1", 1024, 1027)});

    // One new block and one already present: the kernel refuses the batch, names the element,
    // and the new block is not there either.
    auto before = listed(nat);
    try {
        nat.add_blocks({block("100.64.2.0/30", "203.0.113.3", 1024, 2047),
                        block("100.64.0.4/30", "203.0.113.2", 1024, 2047)});
        FAIL("adding a block twice was accepted");
    } catch (const NftError& e) {
        CHECK_THAT(e.what(),
                   Contains("adding element 100.64.0.4/30 to xlat64/blocks: File exists"));
    }
    CHECK(listed(nat) == before);

    // An overlapping block is refused too: two subscribers must never share an address.
    CHECK_THROWS_AS(nat.add_blocks({block("100.64.1.128/30", "203.0.113.4", 1024, 2047)}),
                    NftError);
    CHECK(listed(nat) == before);
    CHECK(ns.operator_table() == operator_before);
}

TEST_CASE("nat: a table of that name not made by xlat64d is never touched", "[nat]") {
    Namespace ns;
    run("nft add table ip xlat64 && nft add chain ip xlat64 mine");
    std::string theirs = run("nft list table ip xlat64");
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kPool);
    CHECK(nat.observe() == NftNatTable::State::foreign);
    CHECK_THROWS_WITH(nat.ensure(), Contains("table ip xlat64 exists and is not managed by "
                                             "xlat64d; choose another nat64.table"));
    CHECK_THROWS_WITH(nat.remove(), Contains("not managed by xlat64d"));
    CHECK_THROWS_AS(nat.replace_blocks(kBlocks), NftError);
    CHECK(run("nft list table ip xlat64") == theirs);

    // Another name works beside it.
    NftNatTable other(sock, "cgn", kPool);
    CHECK(other.ensure());
    CHECK(other.remove());
    CHECK(run("nft list table ip xlat64") == theirs);
}

TEST_CASE("nat: an adopted table with another internal pool is rebuilt with its blocks", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatTable old_pool(sock, "xlat64", {{10, 64, 0, 0}, 16});
    old_pool.ensure();
    std::vector<NatBlock> blocks = {block("10.64.0.0/30", "203.0.113.1", 1024, 2047)};
    old_pool.replace_blocks(blocks);

    NftNatTable nat(sock, "xlat64", kPool);
    CHECK(nat.ensure());
    CHECK(listed(nat) == blocks);
    CHECK_THAT(run("nft list table ip xlat64"), Contains("ip saddr 100.64.0.0/10 counter"));
    CHECK_FALSE(nat.ensure());
}

TEST_CASE("nat: 100000 blocks in one batch", "[nat][scale]") {
    Namespace ns;
    std::string operator_before = ns.operator_table();
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kPool);
    nat.ensure();
    // Subscriber i: internal 100.64.0.0 + 4i /30; public 203.0.113.(i mod 256), block i / 256.
    std::vector<NatBlock> blocks;
    for (uint32_t i = 0; i < 100000; ++i) {
        uint32_t internal = 0x64400000u + 4 * i;
        auto first = static_cast<uint16_t>(1024 + (i / 256) * 128);
        blocks.push_back(
            {{{static_cast<uint8_t>(internal >> 24), static_cast<uint8_t>(internal >> 16),
               static_cast<uint8_t>(internal >> 8), static_cast<uint8_t>(internal)},
              30},
             {203, 0, 113, static_cast<uint8_t>(i % 256)},
             first,
             static_cast<uint16_t>(first + 127)});
    }
    auto start = std::chrono::steady_clock::now();
    nat.replace_blocks(blocks);
    auto added = std::chrono::steady_clock::now();
    auto read = listed(nat);
    auto was_read = std::chrono::steady_clock::now();
    CHECK(read == blocks);
    // Replacing all of them again is one batch as well.
    std::rotate(blocks.begin(), blocks.begin() + 1, blocks.end());
    for (size_t i = 0; i < blocks.size(); ++i) {
        blocks[i].internal = read[i].internal;
    }
    auto replacing = std::chrono::steady_clock::now();
    nat.replace_blocks(blocks);
    auto replaced = std::chrono::steady_clock::now();
    CHECK(listed(nat) == blocks);
    auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
    WARN("100000 blocks: added in " << seconds(added - start) << " s, read in "
                                    << seconds(was_read - added) << " s, all replaced in "
                                    << seconds(replaced - replacing) << " s");
    CHECK(seconds(added - start) < 60);
    CHECK(seconds(replaced - replacing) < 120);
    CHECK(ns.operator_table() == operator_before);
    CHECK(nat.remove());
}

int main(int argc, char** argv) {
    if (unshare(CLONE_NEWNET) != 0) {
        std::perror("nat_tests: unshare(CLONE_NEWNET) (run as root)");
        return 1;
    }
    return Catch::Session().run(argc, argv);
}
