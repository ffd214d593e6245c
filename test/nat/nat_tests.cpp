// NftNatTable against the real kernel. The binary moves itself into a new network namespace
// before any test runs, so every table here lives and dies with that namespace: nothing is ever
// created in the namespace that started the test. nft(8) is run only to look at the result.
#define CATCH_CONFIG_RUNNER
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "netlink/conntrack.h"
#include "netlink/nft_nat_table.h"

using namespace xlat64;
using Catch::Matchers::Contains;

namespace {

const Ipv4Prefix kPool{{100, 64, 0, 0}, 10};
// Interfaces main() creates in the test's namespace with these indexes (nft prints the trusted
// indexes by name).
constexpr uint32_t kEth1 = 2;
constexpr uint32_t kPpp0 = 3;
// Subscribers of 4 hosts (/30) with 16 ports each; internal sources from the device xlat64 (by
// name) and eth1 (by index) only.
const NftNatShape kShape{kPool, 30, 16, true, "xlat64", {kEth1}};

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

// `nft list table ip xlat64` of kShape with kBlocks, as nft 1.0.6 prints it (handles off).
const char* kExpectedTable = R"(table ip xlat64 {
	comment "managed by xlat64d; remove with xlat64d --teardown"
	map blocks {
		type ipv4_addr : interval ipv4_addr . inet_service
		flags interval
		counter
		elements = { 100.64.0.0/30 counter packets 0 bytes 0 : 203.0.113.1 . 1024-2047, 100.64.0.4/30 counter packets 0 bytes 0 : 203.0.113.2 . 1024-2047,
			     100.64.0.8/29 counter packets 0 bytes 0 : 203.0.113.1 . 2048-3071 }
	}

	set sessions {
		type ipv4_addr . inet_proto
		size 1048576
		flags dynamic
	}

	set exhausted {
		type ipv4_addr . inet_proto
		size 65536
		flags dynamic,timeout
		counter
		timeout 1h
	}

	map hairpin {
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		size 1048576
		flags dynamic
	}

	set trusted_ifaces {
		type iface_index
		elements = { "eth1" }
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 100.64.0.0/10 iifname != "xlat64" iif != @trusted_ifaces counter packets 0 bytes 0 drop
		ip saddr 100.64.0.0/10 dnat ip to ip daddr . meta l4proto . th dport map @hairpin
		ip daddr 100.64.0.0/10 counter packets 0 bytes 0 drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 100.64.0.0/10 add @sessions { ip saddr & 255.255.255.252 . meta l4proto ct count over 16 } update @exhausted { ip saddr & 255.255.255.252 . meta l4proto } drop
		snat ip to ip saddr map @blocks
		ip saddr 100.64.0.0/10 counter packets 0 bytes 0 drop
	}

	chain track {
		type filter hook postrouting priority srcnat + 1; policy accept;
		ct status ! confirmed ct original ip saddr 100.64.0.0/10 meta l4proto { tcp, udp } add @hairpin { ct reply ip daddr . meta l4proto . ct reply proto-dst ct count over 0 : ct original ip saddr . ct original proto-src }
	}
}
)";

// The table of the previous version (hairpin entries refreshed by every packet with a timeout,
// the drop towards the pool in a forward chain), as nft would load it: a daemon of this version
// must rebuild it, keeping its blocks, rather than adopt it.
const char* kPreviousVersionTable = R"(table ip xlat64 {
	comment "managed by xlat64d; remove with xlat64d --teardown"
	map blocks {
		type ipv4_addr : interval ipv4_addr . inet_service
		flags interval
		counter
		elements = { 100.64.0.0/30 : 203.0.113.1 . 1024-2047 }
	}
	set sessions {
		type ipv4_addr . inet_proto
		size 1048576
		flags dynamic
	}
	set exhausted {
		type ipv4_addr . inet_proto
		size 65536
		flags dynamic,timeout
		counter
		timeout 1h
	}
	map hairpin {
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		size 1048576
		flags dynamic,timeout
		timeout 2m
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr 100.64.0.0/10 dnat ip to ip daddr . meta l4proto . th dport map @hairpin
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 100.64.0.0/10 add @sessions { ip saddr & 255.255.255.252 . meta l4proto ct count over 16 } update @exhausted { ip saddr & 255.255.255.252 . meta l4proto } drop
		# (the snat rule is left out: nft cannot write its port-offset flag)
		ip saddr 100.64.0.0/10 counter drop
	}
	chain track {
		type filter hook postrouting priority srcnat + 1; policy accept;
		ct direction original ct original ip saddr 100.64.0.0/10 meta l4proto { tcp, udp } update @hairpin { ct reply ip daddr . meta l4proto . ct reply proto-dst : ct original ip saddr . ct original proto-src }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr 100.64.0.0/10 ct direction original ct status ! dnat counter drop
	}
}
)";

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
    NftNatTable nat(sock, "xlat64", kShape);
    CHECK(nat.observe() == NftNatTable::State::absent);
    CHECK(nat.ensure());
    CHECK(nat.observe() == NftNatTable::State::ours);
    CHECK(ns.operator_table() == operator_before);

    nat.replace_blocks(kBlocks);
    CHECK(run("nft list table ip xlat64") == kExpectedTable);
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

    CHECK(nat.forward_drops() == 0);
    CHECK(nat.spoofed_source_drops().packets == 0);
    CHECK(nat.read_trusted_ifindexes() == std::vector<uint32_t>{kEth1});
    CHECK(nat.read_exhausted().empty());
    CHECK(nat.read_hairpins().empty());

    CHECK_FALSE(nat.ensure());  // adopted as it is: nothing changes
    CHECK(run("nft list table ip xlat64") == kExpectedTable);
    NftNatTable again(sock, "xlat64", kShape);  // as a restarted daemon would
    CHECK_FALSE(again.ensure());
    CHECK(run("nft list table ip xlat64") == kExpectedTable);

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
    NftNatTable nat(sock, "xlat64", kShape);
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
    NftNatTable nat(sock, "xlat64", kShape);
    CHECK(nat.observe() == NftNatTable::State::foreign);
    CHECK_THROWS_WITH(nat.ensure(), Contains("table ip xlat64 exists and is not managed by "
                                             "xlat64d; choose another nat64.table"));
    CHECK_THROWS_WITH(nat.remove(), Contains("not managed by xlat64d"));
    CHECK_THROWS_AS(nat.replace_blocks(kBlocks), NftError);
    CHECK(run("nft list table ip xlat64") == theirs);

    // Another name works beside it.
    NftNatTable other(sock, "cgn", kShape);
    CHECK(other.ensure());
    CHECK(other.remove());
    CHECK(run("nft list table ip xlat64") == theirs);
}

TEST_CASE("nat: an adopted table with another internal pool is rebuilt with its blocks", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatTable old_pool(sock, "xlat64", {{{10, 64, 0, 0}, 16}, 30, 16});
    old_pool.ensure();
    std::vector<NatBlock> blocks = {block("10.64.0.0/30", "203.0.113.1", 1024, 2047)};
    old_pool.replace_blocks(blocks);

    NftNatTable nat(sock, "xlat64", kShape);
    CHECK(nat.ensure());
    CHECK(listed(nat) == blocks);
    CHECK_THAT(run("nft list table ip xlat64"), Contains("ip saddr 100.64.0.0/10 counter"));
    CHECK_FALSE(nat.ensure());
}

TEST_CASE("nat: a table of the previous version is rebuilt with its blocks", "[nat]") {
    Namespace ns;
    run("nft -f - <<'EOF'\n" + std::string(kPreviousVersionTable) + "EOF");
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
    CHECK(nat.observe() == NftNatTable::State::ours);
    CHECK_FALSE(nat.shape_matches());
    CHECK(nat.ensure());
    CHECK(listed(nat) == std::vector{block("100.64.0.0/30", "203.0.113.1", 1024, 2047)});
    CHECK(nat.shape_matches());
    std::string rebuilt = run("nft list table ip xlat64");
    CHECK_THAT(rebuilt, !Contains("chain forward") && !Contains("timeout 2m") &&
                            Contains("ip daddr 100.64.0.0/10 counter packets 0 bytes 0 drop"));
    CHECK_FALSE(nat.ensure());  // and this version's table is adopted unchanged
    CHECK(run("nft list table ip xlat64") == rebuilt);
}

// The table of the version that trusted the fast path's interfaces by name (a set of type ifname
// holding the device and translation.ingress_interfaces): an interface re-created under a listed
// name was trusted before its program was attached again. Never adopted: rebuilt, with its
// blocks, into the set of indexes.
TEST_CASE("nat: a table trusting interfaces by name is rebuilt to trust them by index", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
    nat.ensure();
    nat.replace_blocks(kBlocks);
    std::string current = run("nft list table ip xlat64");
    run("nft delete rule ip xlat64 prerouting handle $(nft -a list chain ip xlat64 prerouting | "
        "sed -n 's/.*iif != @trusted_ifaces.*# handle //p') && nft delete set ip xlat64 "
        "trusted_ifaces && nft add set ip xlat64 trusted_ifaces '{ type ifname; elements = { "
        "\"eth1\", \"xlat64\" }; }' && nft insert rule ip xlat64 prerouting ip saddr "
        "100.64.0.0/10 iifname != @trusted_ifaces counter drop");
    CHECK_THAT(run("nft list table ip xlat64"), Contains("iifname != @trusted_ifaces counter"));
    CHECK(nat.observe() == NftNatTable::State::ours);
    CHECK_FALSE(nat.structure_matches());
    CHECK_FALSE(nat.shape_matches());
    CHECK(nat.ensure());
    CHECK(nat.shape_matches());
    CHECK(listed(nat) == kBlocks);
    CHECK(run("nft list table ip xlat64") == current);
}

// The NAT64 run-time reads the spoofed-source counter with the device's name but not the trusted
// indexes (nat64_nft_shape of the nat64 section and the device): the set's elements are not part
// of the rule, the device's name is.
TEST_CASE("nat: the spoofed-source drops are read by the rule that names the device", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatShape siit0 = kShape;
    siit0.trusted_device = "siit0";
    NftNatTable nat(sock, "xlat64", siit0);
    nat.ensure();
    CHECK_THAT(run("nft list chain ip xlat64 prerouting"), Contains("iifname != \"siit0\""));
    // The same rule with counted drops (nft writes the counter's values).
    run("nft replace rule ip xlat64 prerouting handle $(nft -a list chain ip xlat64 prerouting | "
        "sed -n 's/.*iif != @trusted_ifaces.*# handle //p') ip saddr 100.64.0.0/10 iifname != "
        "\"siit0\" iif != @trusted_ifaces counter packets 5 bytes 500 drop");
    CHECK(nat.shape_matches());
    CHECK(nat.spoofed_source_drops().packets == 5);
    NftNatShape runtime_shape{kPool, 30, 16};
    runtime_shape.trusted_device = "siit0";
    NftNatTable runtime_view(sock, "xlat64", runtime_shape);
    CHECK(runtime_view.spoofed_source_drops().packets == 5);
    CHECK(runtime_view.spoofed_source_drops().bytes == 500);
    // Another device's rule is not this table's: nothing counted.
    runtime_shape.trusted_device = "xlat64";
    CHECK(NftNatTable(sock, "xlat64", runtime_shape).spoofed_source_drops().packets == 0);
}

TEST_CASE("nat: another block length or block size is rebuilt with its blocks", "[nat]") {
    Namespace ns;
    std::string operator_before = ns.operator_table();
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
    nat.ensure();
    nat.replace_blocks(kBlocks);
    std::string before = run("nft list table ip xlat64");

    NftNatTable more_ports(sock, "xlat64", {kPool, 30, 64});
    CHECK(more_ports.ensure());
    CHECK(listed(more_ports) == kBlocks);
    std::string rebuilt = run("nft list table ip xlat64");
    CHECK_THAT(rebuilt, Contains("ct count over 64 }"));
    CHECK_FALSE(more_ports.ensure());
    CHECK(run("nft list table ip xlat64") == rebuilt);

    NftNatTable larger_blocks(sock, "xlat64", {kPool, 28, 64});
    CHECK(larger_blocks.ensure());
    CHECK(listed(larger_blocks) == kBlocks);
    CHECK_THAT(run("nft list table ip xlat64"),
               Contains("ip saddr & 255.255.255.240 . meta l4proto ct count over 64 }"));
    CHECK_FALSE(larger_blocks.ensure());

    // And back: exactly the table first built.
    CHECK(nat.ensure());
    CHECK(run("nft list table ip xlat64") == before);
    CHECK(ns.operator_table() == operator_before);
}

// The ingress fast path's interfaces (or their indexes) change: the set's elements change in one
// batch, and the table (its blocks, its counters, the connections' state) stays.
TEST_CASE("nat: trusted interfaces change in place, never by a rebuild", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
    nat.ensure();
    nat.replace_blocks(kBlocks);
    // A rebuild deletes the table and creates another: a new handle.
    auto table_handle = [] { return run("nft -a list table ip xlat64 | head -n 1"); };
    const std::string handle = table_handle();

    NftNatShape wider = kShape;
    wider.trusted_ifindexes = {kPpp0, kEth1, kPpp0};
    NftNatTable fast_path(sock, "xlat64", wider);
    CHECK(fast_path.shape().trusted_ifindexes == std::vector<uint32_t>{kEth1, kPpp0});
    CHECK(fast_path.observe() == NftNatTable::State::ours);
    CHECK(fast_path.structure_matches());
    CHECK_FALSE(fast_path.shape_matches());
    CHECK(fast_path.ensure());
    CHECK(fast_path.read_trusted_ifindexes() == fast_path.shape().trusted_ifindexes);
    CHECK(fast_path.shape_matches());
    CHECK_FALSE(fast_path.ensure());
    CHECK(table_handle() == handle);
    CHECK(listed(fast_path) == kBlocks);
    CHECK_THAT(run("nft list set ip xlat64 trusted_ifaces"),
               Contains("type iface_index") && Contains("elements = { \"eth1\", \"ppp0\" }"));

    // What the reconciler does when an interface gets or loses the fast path: only the set.
    // An index no interface has any more (re-created: a new index) is printed as a number.
    fast_path.set_trusted_ifindexes({kPpp0, 77});
    CHECK(fast_path.read_trusted_ifindexes() == std::vector<uint32_t>{kPpp0, 77});
    CHECK_THAT(run("nft list set ip xlat64 trusted_ifaces"),
               Contains("elements = { \"ppp0\", 77 }"));
    CHECK(fast_path.shape().trusted_ifindexes == std::vector<uint32_t>{kPpp0, 77});
    fast_path.set_trusted_ifindexes({});
    CHECK(fast_path.read_trusted_ifindexes().empty());
    CHECK(fast_path.structure_matches());
    CHECK(table_handle() == handle);
    CHECK(listed(fast_path) == kBlocks);
    CHECK_THROWS_WITH(fast_path.set_trusted_ifindexes({0}),
                      Contains("0 is not an interface index"));

    // Emptied by hand: repaired the same way. And back to the first list: the first table.
    fast_path.set_trusted_ifindexes({kEth1, kPpp0});
    run("nft flush set ip xlat64 trusted_ifaces");
    CHECK(fast_path.read_trusted_ifindexes().empty());
    CHECK_FALSE(fast_path.shape_matches());
    CHECK(fast_path.ensure());
    CHECK(fast_path.shape_matches());
    CHECK(nat.ensure());
    CHECK(run("nft list table ip xlat64") == kExpectedTable);
    CHECK(table_handle() == handle);
}

// The drop of spoofed internal sources is part of the table's rules: a table without it (tampered
// with, or of an earlier version) is not adopted but rebuilt with its blocks.
TEST_CASE("nat: a table without the spoofed-source drop is rebuilt", "[nat]") {
    Namespace ns;
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
    nat.ensure();
    nat.replace_blocks(kBlocks);
    run("nft delete rule ip xlat64 prerouting handle $(nft -a list chain ip xlat64 prerouting | "
        "sed -n 's/.*iif != @trusted_ifaces.*# handle //p')");
    CHECK_THAT(run("nft list table ip xlat64"), !Contains("trusted_ifaces counter"));
    CHECK_FALSE(nat.shape_matches());
    CHECK(nat.ensure());
    CHECK(run("nft list table ip xlat64") == kExpectedTable);
    CHECK(listed(nat) == kBlocks);
}

TEST_CASE("nat: shapes that cannot be built are refused with the reason", "[nat]") {
    NftSocket sock;
    CHECK_THROWS_WITH(NftNatTable(sock, "xlat64", {kPool, 8, 16}),
                      Contains("internal blocks of /8 do not fit the internal pool 100.64.0.0/10"));
    CHECK_THROWS_WITH(NftNatTable(sock, "xlat64", {kPool, 30, 0}),
                      Contains("0 ports per block is outside 1-65536"));
    CHECK_THROWS_WITH(NftNatTable(sock, "xlat64", {kPool, 30, 16, true, "sixteen-chars-ab"}),
                      Contains("\"sixteen-chars-ab\" is not an interface name (1-15 characters)"));
    CHECK_THROWS_WITH(NftNatTable(sock, "xlat64", {kPool, 30, 16, true, "xlat64", {3, 0}}),
                      Contains("0 is not an interface index"));
}

namespace {

// A socket closed when the test ends.
struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) { REQUIRE(fd >= 0); }
    ~Fd() { close(fd); }
};

sockaddr_in address(const char* ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

// A UDP datagram from SRC:SPORT to DST:DPORT; the errno of sendto (0 when sent). Locally
// generated packets cross the nat postrouting hook too, and a drop there is EPERM.
int send_udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    Fd s(socket(AF_INET, SOCK_DGRAM, 0));
    int on = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in from = address(src, sport);
    REQUIRE(bind(s.fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0);
    sockaddr_in to = address(dst, dport);
    return sendto(s.fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 1 ? 0 : errno;
}

}  // namespace

TEST_CASE("nat: a full block refuses new connections of that protocol only", "[nat]") {
    Namespace ns;
    // The public pool routed to lo too: replies to a NATed local flow are routed to the public
    // address before conntrack turns it back into the internal one.
    run("ip link set lo up && ip addr add 100.64.0.1/32 dev lo && ip addr add 100.64.0.5/32 dev lo "
        "&& ip route add 203.0.113.0/24 dev lo");
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", {kPool, 30, 2});
    nat.ensure();
    nat.replace_blocks({block("100.64.0.0/30", "203.0.113.1", 1024, 1027),
                        block("100.64.0.4/30", "203.0.113.2", 1024, 1027)});
    Fd server(socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in listen = address("127.0.0.1", 9999);
    REQUIRE(bind(server.fd, reinterpret_cast<sockaddr*>(&listen), sizeof(listen)) == 0);

    // Subscriber A: two UDP connections fit its limit of 2, the third and fourth are refused.
    CHECK(send_udp("100.64.0.1", 5000, "127.0.0.1", 9999) == 0);
    CHECK(send_udp("100.64.0.1", 5001, "127.0.0.1", 9999) == 0);
    CHECK(send_udp("100.64.0.1", 5002, "127.0.0.1", 9999) == EPERM);
    CHECK(send_udp("100.64.0.1", 5003, "127.0.0.1", 9999) == EPERM);
    // An existing connection goes on; another protocol and another subscriber are unaffected.
    CHECK(send_udp("100.64.0.1", 5000, "127.0.0.1", 9999) == 0);
    run("ping -c 1 -W 2 -I 100.64.0.1 127.0.0.1");
    CHECK(send_udp("100.64.0.5", 5000, "127.0.0.1", 9999) == 0);

    std::vector<NatExhaustion> exhausted = nat.read_exhausted();
    REQUIRE(exhausted.size() == 1);
    CHECK(exhausted[0].internal_block == *parse_ipv4_prefix("100.64.0.0/30"));
    CHECK(exhausted[0].l4proto == IPPROTO_UDP);
    CHECK(exhausted[0].refused == 2);
    CHECK_THAT(run("nft list set ip xlat64 exhausted"),
               Contains("elements = { 100.64.0.0 . udp counter packets 2 bytes 58 expires"));

    // The track chain learnt each UDP flow's public address and port (block start + internal
    // port mod 4) and the internal ones behind it; refused flows never got one.
    const Ipv4Address a{100, 64, 0, 1};
    const Ipv4Address b{100, 64, 0, 5};
    const Ipv4Address public_a{203, 0, 113, 1};
    const Ipv4Address public_b{203, 0, 113, 2};
    std::vector<NatHairpin> expected = {{public_a, IPPROTO_UDP, 1024, a, 5000},
                                        {public_a, IPPROTO_UDP, 1025, a, 5001},
                                        {public_b, IPPROTO_UDP, 1024, b, 5000}};
    CHECK(nat.read_hairpins() == expected);
    CHECK(nat.unmapped_drops() == 0);

    // An entry lives as long as the connections behind it, not by a timeout: past two rounds of
    // the kernel's set garbage collection (about a second each) all are still there, and none
    // carries an expiry.
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    CHECK(nat.read_hairpins() == expected);
    CHECK_THAT(run("nft list map ip xlat64 hairpin"), !Contains("expires"));
    // Once conntrack forgets the connections, the collector removes their entries.
    if (run("command -v conntrack", false).empty()) {
        WARN("no conntrack tool: the removal of hairpin entries is not checked");
        return;
    }
    run("conntrack -D -s 100.64.0.1 >/dev/null 2>&1; true");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::vector<NatHairpin> left = nat.read_hairpins();
    while (left.size() > 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        left = nat.read_hairpins();
    }
    CHECK(left == std::vector<NatHairpin>{{public_b, IPPROTO_UDP, 1024, b, 5000}});
}

TEST_CASE("conntrack: entries counted per original source and protocol", "[nat][conntrack]") {
    Namespace ns;  // its ct state rule makes the namespace track connections
    run("ip link set lo up && for a in 100.100.0.1 100.100.0.2 100.100.1.1; do "
        "ip addr add $a/32 dev lo; done");
    Fd listener(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in listen_at = address("127.0.0.1", 8080);
    REQUIRE(bind(listener.fd, reinterpret_cast<sockaddr*>(&listen_at), sizeof(listen_at)) == 0);
    REQUIRE(::listen(listener.fd, 4) == 0);
    Fd tcp(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in tcp_from = address("100.100.0.1", 0);
    REQUIRE(bind(tcp.fd, reinterpret_cast<sockaddr*>(&tcp_from), sizeof(tcp_from)) == 0);
    REQUIRE(connect(tcp.fd, reinterpret_cast<sockaddr*>(&listen_at), sizeof(listen_at)) == 0);

    // Enough UDP entries from one address that the dump takes many messages.
    constexpr int kMany = 20000;
    {
        Fd udp(socket(AF_INET, SOCK_DGRAM, 0));
        sockaddr_in from = address("100.100.0.1", 4000);
        REQUIRE(bind(udp.fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0);
        for (int i = 0; i < kMany; ++i) {
            sockaddr_in to = address("127.0.0.1", static_cast<uint16_t>(10000 + i));
            REQUIRE(sendto(udp.fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 1);
        }
    }
    for (uint16_t port : {1, 2, 3}) {
        REQUIRE(send_udp("100.100.0.2", 4000, "127.0.0.1", port) == 0);
    }
    for (uint16_t port : {1, 2, 3, 4, 5}) {
        REQUIRE(send_udp("100.100.1.1", 4000, "127.0.0.1", port) == 0);  // outside the prefix
    }
    run("ping -c 1 -W 2 -I 100.100.0.1 127.0.0.1");
    // A protocol conntrack knows only generically (253: for experiments, RFC 3692).
    Fd raw(socket(AF_INET, SOCK_RAW, 253));
    sockaddr_in raw_from = address("100.100.0.1", 0);
    REQUIRE(bind(raw.fd, reinterpret_cast<sockaddr*>(&raw_from), sizeof(raw_from)) == 0);
    sockaddr_in raw_to = address("127.0.0.1", 0);
    REQUIRE(sendto(raw.fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&raw_to), sizeof(raw_to)) == 1);

    Conntrack conntrack;
    auto counts = conntrack.count_by_source(*parse_ipv4_prefix("100.100.0.0/24"));
    std::map<Ipv4Address, ConntrackCounts> expected = {
        {{100, 100, 0, 1}, {.tcp = 1, .udp = kMany, .icmp = 1, .other = 1}},
        {{100, 100, 0, 2}, {.udp = 3}},
    };
    CHECK(counts == expected);
    CHECK(counts[{100, 100, 0, 1}].total() == kMany + 3);
    CHECK(conntrack.count_by_source(*parse_ipv4_prefix("100.100.1.0/24")).at({100, 100, 1, 1}) ==
          ConntrackCounts{.udp = 5});
    CHECK(conntrack.count_by_source(*parse_ipv4_prefix("192.0.2.0/24")).empty());
}

TEST_CASE("nat: 100000 blocks in one batch", "[nat][scale]") {
    Namespace ns;
    std::string operator_before = ns.operator_table();
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", kShape);
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
    // The interfaces of kEth1 and kPpp0, so that nft prints the trusted indexes by name.
    // (veth pairs: this kernel may lack the dummy driver).
    if (std::system("ip link add eth1 index 2 type veth peer name eth1-peer index 4 && "
                    "ip link add ppp0 index 3 type veth peer name ppp0-peer index 5") != 0) {
        std::fprintf(stderr, "nat_tests: creating the dummy interfaces eth1 and ppp0 failed\n");
        return 1;
    }
    return Catch::Session().run(argc, argv);
}

// hosts_per_subscriber 1: every block is one internal address, and the blocks map is a map of
// addresses (a hash, one element per block) rather than an interval map (issue 7: a million
// blocks are restored in a reboot). Everything else reads and writes it alike; a table of the
// earlier interval shape is rebuilt with its blocks.
TEST_CASE("nat: blocks of one address are a map of addresses", "[nat]") {
    Namespace ns;
    const NftNatShape shape{kPool, 32, 16};
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", shape);
    CHECK(nat.ensure());
    const std::vector<NatBlock> blocks = {block("100.64.0.1/32", "203.0.113.1", 1024, 1039),
                                          block("100.64.0.2/32", "203.0.113.1", 1040, 1055),
                                          block("100.64.0.3/32", "203.0.113.2", 1024, 1039)};
    nat.replace_blocks(blocks);
    const std::string listing = run("nft list map ip xlat64 blocks");
    INFO(listing);
    CHECK_THAT(listing, !Catch::Contains("flags interval"));
    CHECK_THAT(listing, Catch::Contains("100.64.0.2 counter packets 0 bytes 0 : 203.0.113.1 . "
                                        "1040-1055"));
    CHECK(listed(nat) == blocks);
    auto one = nat.read_block(blocks[1].internal);
    REQUIRE(one);
    CHECK(one->block == blocks[1]);
    CHECK_FALSE(nat.read_block(*parse_ipv4_prefix("100.64.0.9/32")));

    nat.remove_blocks({blocks[0]});
    nat.add_blocks({block("100.64.0.9/32", "203.0.113.3", 1024, 1039)});
    CHECK(listed(nat) ==
          std::vector{blocks[1], blocks[2], block("100.64.0.9/32", "203.0.113.3", 1024, 1039)});
    CHECK_FALSE(NftNatTable(sock, "xlat64", shape).ensure());  // adopted

    // The same blocks in a table of the interval shape (an earlier version): rebuilt, kept.
    CHECK(nat.remove());
    NftNatTable interval(sock, "xlat64", NftNatShape{kPool, 31, 16});
    interval.ensure();
    interval.replace_blocks(blocks);
    CHECK(nat.ensure());
    CHECK(listed(nat) == blocks);
    CHECK_THAT(run("nft list map ip xlat64 blocks"), !Catch::Contains("flags interval"));
    CHECK(nat.remove());
}

// nat64.session_counters: false leaves the blocks map without its per-element counter (16 bytes
// per block per CPU, and half the time of filling a million blocks); turning it on or off
// rebuilds the table with its blocks.
TEST_CASE("nat: blocks without session counters", "[nat]") {
    Namespace ns;
    NftNatShape shape{kPool, 32, 16};
    shape.session_counters = false;
    NftSocket sock;
    NftNatTable nat(sock, "xlat64", shape);
    CHECK(nat.ensure());
    const std::vector<NatBlock> blocks = {block("100.64.0.1/32", "203.0.113.1", 1024, 1039)};
    nat.replace_blocks(blocks);
    const std::string listing = run("nft list map ip xlat64 blocks");
    INFO(listing);
    CHECK_THAT(listing, !Catch::Contains("counter"));
    CHECK_THAT(listing, Catch::Contains("100.64.0.1 : 203.0.113.1 . 1024-1039"));
    CHECK(listed(nat) == blocks);

    NftNatTable counted(sock, "xlat64", NftNatShape{kPool, 32, 16});
    CHECK(counted.ensure());  // the other shape: rebuilt, blocks kept
    CHECK(listed(counted) == blocks);
    CHECK_THAT(run("nft list map ip xlat64 blocks"), Catch::Contains("counter packets 0"));
    CHECK(counted.remove());
}
