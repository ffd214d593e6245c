// Datapath tests (DESIGN.md, testing layer 2): every fixture in fixtures/*.txt (written by
// gen_fixtures.py with scapy; the format is described there) runs through the real tc program with
// BPF_PROG_TEST_RUN. For each one: the maps are set up as the fixture says on a freshly loaded
// program, the verdict, the counters and the output frame are compared with the fixture, and the
// checksums of the output are verified with this file's own RFC 1071 code, independent of both
// the program and scapy; for NAT64 fixtures, the hosts and leases left in the maps too. Needs root
// (loading BPF programs).
#define CATCH_CONFIG_MAIN
#include <bpf/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "daemon/bpf_translator.h"
#include "daemon/nat64_layout.h"
#include "daemon/nat64_maps.h"
#include "test/datapath/packet_checks.h"

namespace {

using namespace xlat64_test;

enum class Pool6Mode { kPrefix, kNone, kUnset };

// A NAT64 host: its IPv6 address and internal IPv4 address ("n64host", "expect_host").
using HostEntry = std::pair<xlat64::Ipv6Address, xlat64::Ipv4Address>;
// A dynamic lease: subscriber prefix and block ("n64lease", "expect_lease").
using LeaseEntry = std::pair<xlat64::Ipv6Prefix, uint32_t>;

struct Fixture {
    std::string name;
    std::string location;  // file:line of the "fixture" line
    Pool6Mode pool6_mode = Pool6Mode::kUnset;
    xlat64::Ipv6Prefix pool6;
    std::vector<xlat64::EamEntry> eams;
    Bytes in;
    int verdict = -1;
    std::string counter;
    std::optional<Bytes> out;
    // "local": the packet was originated by the router itself (ingress_ifindex 0); otherwise it
    // was forwarded into the device (ingress_ifindex 1).
    bool local = false;
    std::optional<xlat64::TranslationConfig> translation;
    // "nat64 KEY VALUE": the `nat64:` section, and what the free queue holds (nullopt: "all").
    std::optional<xlat64::Nat64Config> nat64;
    std::optional<std::vector<uint32_t>> free_queue;
    std::vector<HostEntry> n64hosts;
    std::vector<LeaseEntry> n64leases;
    std::vector<std::string> also_counters;
    std::vector<HostEntry> expect_hosts;
    std::vector<LeaseEntry> expect_leases;
    // "ingress ACTION [WHY]" and "ingress_out": the instance at an interface's ingress.
    enum class Ingress { kNone, kTranslated, kDeferred, kNotMine, kInternalSource };
    Ingress ingress = Ingress::kNone;
    std::optional<Bytes> ingress_out;
};

// Splits "a,b,c".
std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        out.push_back(item);
    }
    return out;
}

// "nat64 KEY VALUE": one option of the config's `nat64:` section (or free_queue, the test's).
void apply_nat64_option(Fixture& f, const std::string& key, const std::string& value,
                        const std::string& where) {
    auto fail = [&]() -> void {
        throw std::runtime_error(where + ": bad nat64 option " + key + " " + value);
    };
    xlat64::Nat64Config& c = *f.nat64;
    if (key == "prefixes") {
        c.prefixes.clear();
        for (const std::string& text : split_commas(value)) {
            auto prefix = xlat64::parse_ipv6_prefix(text);
            if (!prefix)
                fail();
            c.prefixes.push_back(*prefix);
        }
    } else if (key == "public_prefixes") {
        c.public_prefixes.clear();
        for (const std::string& text : split_commas(value)) {
            auto prefix = xlat64::parse_ipv4_prefix(text);
            if (!prefix)
                fail();
            c.public_prefixes.push_back(*prefix);
        }
    } else if (key == "subscriber_length") {
        c.subscriber_length = static_cast<uint8_t>(std::stoul(value));
    } else if (key == "hosts_per_subscriber") {
        c.hosts_per_subscriber = static_cast<uint32_t>(std::stoul(value));
    } else if (key == "internal_pool") {
        auto prefix = xlat64::parse_ipv4_prefix(value);
        if (!prefix)
            fail();
        c.internal_pool = *prefix;
    } else if (key == "ports") {
        size_t dash = value.find('-');
        if (dash == std::string::npos)
            fail();
        c.ports.first = static_cast<uint16_t>(std::stoul(value.substr(0, dash)));
        c.ports.last = static_cast<uint16_t>(std::stoul(value.substr(dash + 1)));
    } else if (key == "block_size") {
        c.block_size = static_cast<uint32_t>(std::stoul(value));
    } else if (key == "mode") {
        if (value == "deterministic") {
            c.mode = xlat64::Nat64Mode::deterministic;
        } else if (value == "dynamic") {
            c.mode = xlat64::Nat64Mode::dynamic;
        } else {
            fail();
        }
    } else if (key == "free_queue") {
        if (value == "all") {
            f.free_queue.reset();
        } else if (value == "none") {
            f.free_queue.emplace();
        } else {
            f.free_queue.emplace();
            for (const std::string& item : split_commas(value)) {
                f.free_queue->push_back(static_cast<uint32_t>(std::stoul(item)));
            }
        }
    } else {
        fail();
    }
}

HostEntry parse_host(const std::vector<std::string>& args, const std::string& where) {
    auto v6 = xlat64::parse_ipv6_address(args[0]);
    auto v4 = xlat64::parse_ipv4_address(args[1]);
    if (!v6 || !v4) {
        throw std::runtime_error(where + ": bad NAT64 host " + args[0] + " " + args[1]);
    }
    return {*v6, *v4};
}

LeaseEntry parse_lease(const std::vector<std::string>& args, const std::string& where) {
    auto prefix = xlat64::parse_ipv6_prefix(args[0]);
    if (!prefix) {
        throw std::runtime_error(where + ": bad subscriber prefix " + args[0]);
    }
    return {*prefix, static_cast<uint32_t>(std::stoul(args[1]))};
}

// "translation KEY VALUE": one option of the config's `translation:` section.
void apply_translation_option(xlat64::TranslationConfig& t, const std::string& key,
                              const std::string& value, const std::string& where) {
    auto fail = [&]() -> void {
        throw std::runtime_error(where + ": bad translation option " + key + " " + value);
    };
    if (key == "lowest_ipv6_mtu") {
        t.lowest_ipv6_mtu = static_cast<uint32_t>(std::stoul(value));
    } else if (key == "udp_zero_checksum") {
        t.drop_udp_zero_checksum = value == "drop";
    } else if (key == "traffic_class") {
        if (value == "copy") {
            t.traffic_class.reset();
        } else {
            t.traffic_class = static_cast<uint8_t>(std::stoul(value, nullptr, 0));
        }
    } else if (key == "allow_wkp_non_global") {
        t.allow_wkp_non_global = value == "true";
    } else if (key == "ipv4_address") {
        t.ipv4_address = xlat64::parse_ipv4_address(value);
        if (!t.ipv4_address)
            fail();
    } else if (key == "ipv6_address") {
        t.ipv6_address = xlat64::parse_ipv6_address(value);
        if (!t.ipv6_address)
            fail();
    } else if (key == "rfc6791_pool4") {
        t.rfc6791_pool4 = xlat64::parse_ipv4_prefix(value);
        if (!t.rfc6791_pool4)
            fail();
    } else if (key == "rfc6791_pool6") {
        t.rfc6791_pool6 = xlat64::parse_ipv6_prefix(value);
        if (!t.rfc6791_pool6)
            fail();
    } else {
        fail();
    }
}

// --- fixture files ------------------------------------------------------------------------------

Bytes parse_hex(const std::string& hex, const std::string& where) {
    if (hex.size() % 2 != 0) {
        throw std::runtime_error(where + ": odd number of hex digits");
    }
    Bytes bytes;
    bytes.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
        unsigned value = 0;
        if (std::sscanf(hex.substr(i, 2).c_str(), "%2x", &value) != 1 ||
            !std::isxdigit(static_cast<unsigned char>(hex[i])) ||
            !std::isxdigit(static_cast<unsigned char>(hex[i + 1]))) {
            throw std::runtime_error(where + ": not hex: " + hex.substr(i, 2));
        }
        bytes.push_back(static_cast<uint8_t>(value));
    }
    return bytes;
}

std::vector<Fixture> parse_fixture_file(const std::filesystem::path& path) {
    std::ifstream file(path);
    if (!file) {
        throw std::runtime_error("cannot read " + path.string());
    }
    std::vector<Fixture> fixtures;
    std::optional<Fixture> current;
    bool has_pool6 = false;
    std::string line;
    for (int lineno = 1; std::getline(file, line); ++lineno) {
        std::string where = path.filename().string() + ":" + std::to_string(lineno);
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::istringstream words(line);
        std::string key;
        words >> key;
        std::vector<std::string> args;
        for (std::string word; words >> word;) {
            args.push_back(word);
        }
        auto want_args = [&](size_t n) {
            if (args.size() != n) {
                throw std::runtime_error(where + ": \"" + key + "\" takes " + std::to_string(n) +
                                         " argument(s)");
            }
        };
        if (key == "fixture") {
            want_args(1);
            if (current) {
                throw std::runtime_error(where + ": fixture " + current->name + " has no \"end\"");
            }
            current.emplace();
            current->name = args[0];
            current->location = where;
            has_pool6 = false;
            continue;
        }
        if (!current) {
            throw std::runtime_error(where + ": \"" + key + "\" outside a fixture");
        }
        if (key == "pool6") {
            want_args(1);
            if (has_pool6) {
                throw std::runtime_error(where + ": second pool6 line");
            }
            has_pool6 = true;
            if (args[0] == "none") {
                current->pool6_mode = Pool6Mode::kNone;
            } else if (args[0] == "unset") {
                current->pool6_mode = Pool6Mode::kUnset;
            } else {
                auto prefix = xlat64::parse_ipv6_prefix(args[0]);
                if (!prefix) {
                    throw std::runtime_error(where + ": bad IPv6 prefix " + args[0]);
                }
                current->pool6_mode = Pool6Mode::kPrefix;
                current->pool6 = *prefix;
            }
        } else if (key == "eam") {
            want_args(2);
            auto v4 = xlat64::parse_ipv4_prefix(args[0]);
            auto v6 = xlat64::parse_ipv6_prefix(args[1]);
            if (!v4 || !v6) {
                throw std::runtime_error(where + ": bad EAM entry " + args[0] + " " + args[1]);
            }
            current->eams.push_back(xlat64::EamEntry{*v4, *v6});
        } else if (key == "in") {
            want_args(1);
            current->in = parse_hex(args[0], where);
        } else if (key == "out") {
            want_args(1);
            current->out = parse_hex(args[0], where);
        } else if (key == "verdict") {
            want_args(1);
            if (args[0] == "TC_ACT_REDIRECT") {
                current->verdict = TC_ACT_REDIRECT;
            } else if (args[0] == "TC_ACT_SHOT") {
                current->verdict = TC_ACT_SHOT;
            } else {
                throw std::runtime_error(where + ": unknown verdict " + args[0]);
            }
        } else if (key == "local") {
            want_args(0);
            current->local = true;
        } else if (key == "translation") {
            want_args(2);
            if (!current->translation) {
                current->translation.emplace();
            }
            apply_translation_option(*current->translation, args[0], args[1], where);
        } else if (key == "counter") {
            want_args(1);
            current->counter = args[0];
        } else if (key == "also_counter") {
            want_args(1);
            current->also_counters.push_back(args[0]);
        } else if (key == "nat64") {
            want_args(2);
            if (!current->nat64) {
                current->nat64.emplace();
            }
            apply_nat64_option(*current, args[0], args[1], where);
        } else if (key == "n64host" || key == "expect_host") {
            want_args(2);
            (key == "n64host" ? current->n64hosts : current->expect_hosts)
                .push_back(parse_host(args, where));
        } else if (key == "n64lease" || key == "expect_lease") {
            want_args(2);
            (key == "n64lease" ? current->n64leases : current->expect_leases)
                .push_back(parse_lease(args, where));
        } else if (key == "ingress") {
            if (args == std::vector<std::string>{"TC_ACT_OK"}) {
                current->ingress = Fixture::Ingress::kTranslated;
            } else if (args == std::vector<std::string>{"TC_ACT_UNSPEC", "deferred"}) {
                current->ingress = Fixture::Ingress::kDeferred;
            } else if (args == std::vector<std::string>{"TC_ACT_UNSPEC", "not_mine"}) {
                current->ingress = Fixture::Ingress::kNotMine;
            } else if (args == std::vector<std::string>{"TC_ACT_SHOT", "internal_source"}) {
                current->ingress = Fixture::Ingress::kInternalSource;
            } else {
                throw std::runtime_error(where + ": bad ingress line");
            }
        } else if (key == "ingress_out") {
            want_args(1);
            current->ingress_out = parse_hex(args[0], where);
        } else if (key == "end") {
            want_args(0);
            const Fixture& f = *current;
            if ((f.ingress == Fixture::Ingress::kTranslated) != f.ingress_out.has_value()) {
                throw std::runtime_error(where + ": fixture " + f.name +
                                         " needs ingress_out exactly with \"ingress TC_ACT_OK\"");
            }
            if (!has_pool6 || f.in.empty() || f.verdict < 0 || f.counter.empty() ||
                (f.verdict == TC_ACT_REDIRECT) != f.out.has_value()) {
                throw std::runtime_error(where + ": fixture " + f.name +
                                         " needs pool6, in, verdict, counter, and out exactly "
                                         "when the verdict is TC_ACT_REDIRECT");
            }
            bool nat64_state = !f.n64hosts.empty() || !f.n64leases.empty() ||
                               !f.expect_hosts.empty() || !f.expect_leases.empty();
            if (nat64_state && !f.nat64) {
                throw std::runtime_error(where + ": fixture " + f.name +
                                         " has NAT64 hosts or leases but no nat64 lines");
            }
            if (f.nat64 && f.pool6_mode == Pool6Mode::kUnset) {
                throw std::runtime_error(where + ": fixture " + f.name +
                                         " has nat64 lines with pool6 unset");
            }
            fixtures.push_back(std::move(*current));
            current.reset();
        } else {
            throw std::runtime_error(where + ": unknown key \"" + key + "\"");
        }
    }
    if (current) {
        throw std::runtime_error(path.string() + ": fixture " + current->name + " has no \"end\"");
    }
    return fixtures;
}

std::vector<Fixture> load_fixtures(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() == ".txt") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<Fixture> all;
    std::set<std::string> names;
    for (const auto& file : files) {
        for (Fixture& f : parse_fixture_file(file)) {
            if (!names.insert(f.name).second) {
                throw std::runtime_error(f.location + ": duplicate fixture name " + f.name);
            }
            all.push_back(std::move(f));
        }
    }
    return all;
}

// The translator draws the IPv4 Identification at random (RFC 7915 section 5.1): take the one the
// program chose into the expected frame and recompute the expected header checksum.
void adopt_ipv4_id(Bytes& expected, const Bytes& actual) {
    if (expected.size() < kEthHeaderLen + 20 || actual.size() < kEthHeaderLen + 20 ||
        get16(expected, 12) != kEthTypeIpv4) {
        return;
    }
    uint8_t* ip = expected.data() + kEthHeaderLen;
    size_t ihl = (ip[0] & 0xf) * 4U;
    if (ihl < 20 || kEthHeaderLen + ihl > expected.size()) {
        return;
    }
    ip[4] = actual[kEthHeaderLen + 4];
    ip[5] = actual[kEthHeaderLen + 5];
    ip[10] = ip[11] = 0;
    uint16_t check = static_cast<uint16_t>(~fold(sum16(ip, ihl)));
    ip[10] = static_cast<uint8_t>(check >> 8);
    ip[11] = static_cast<uint8_t>(check & 0xff);
}

// Rows of 16 bytes where the frames differ, expected above actual, '^' under each difference.
std::string hex_diff(const Bytes& expected, const Bytes& actual) {
    std::ostringstream out;
    out << "expected " << expected.size() << " bytes, got " << actual.size() << " bytes\n";
    size_t rows = (std::max(expected.size(), actual.size()) + 15) / 16;
    char buf[24];
    for (size_t row = 0; row < rows; ++row) {
        std::string exp_line, act_line, marks;
        bool differs = false;
        for (size_t i = row * 16; i < row * 16 + 16; ++i) {
            bool has_e = i < expected.size();
            bool has_a = i < actual.size();
            if (has_e) {
                std::snprintf(buf, sizeof(buf), " %02x", expected[i]);
                exp_line += buf;
            } else {
                exp_line += "   ";
            }
            if (has_a) {
                std::snprintf(buf, sizeof(buf), " %02x", actual[i]);
                act_line += buf;
            } else {
                act_line += "   ";
            }
            bool diff = has_e != has_a || (has_e && expected[i] != actual[i]);
            marks += diff ? " ^^" : "   ";
            differs = differs || diff;
        }
        if (differs) {
            std::snprintf(buf, sizeof(buf), "%04zx", row * 16);
            out << buf << " expected" << exp_line << "\n"
                << "     actual  " << act_line << "\n"
                << "             " << marks << "\n";
        }
    }
    return out.str();
}

std::optional<size_t> counter_index(const std::string& label) {
    const auto& infos = xlat64::stat_infos();
    for (size_t i = 0; i < infos.size(); ++i) {
        if (label == infos[i].name) {
            return i;
        }
    }
    return std::nullopt;
}

// --- NAT64 state ---------------------------------------------------------------------------------

uint32_t to_u32(const xlat64::Ipv4Address& a) {
    return uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3];
}

// The block an internal address belongs to (xlat64_abi.h, "NAT64 host mapping").
uint32_t block_of(const xlat64::Nat64Config& c, const xlat64::Ipv4Address& internal) {
    uint32_t base = to_u32(xlat64::mask_address(c.internal_pool.addr, c.internal_pool.len));
    return (to_u32(internal) - base) >> std::countr_zero(c.hosts_per_subscriber);
}

// A host (or lease) as the comparison below sees it, printable.
using HostRecord = std::tuple<xlat64::Ipv6Address, xlat64::Ipv4Address, uint32_t>;
using LeaseRecord = std::pair<xlat64::Ipv6Prefix, uint32_t>;

std::string describe(const std::vector<HostRecord>& hosts) {
    std::string out = "{";
    for (const auto& [host, internal, block] : hosts) {
        out += " " + xlat64::to_string(host) + "->" + xlat64::to_string(internal) + " (block " +
               std::to_string(block) + ")";
    }
    return out + " }";
}

std::string describe(const std::vector<LeaseRecord>& leases) {
    std::string out = "{";
    for (const auto& [prefix, block] : leases) {
        out += " " + xlat64::to_string(prefix) + ":" + std::to_string(block);
    }
    return out + " }";
}

// Writes the fixture's NAT64 settings, admitted prefixes, free queue, hosts and leases.
// Loading the program (verifier, maps) is most of a fixture's cost, so one translator serves every
// fixture whose settings get written; before each, every map the fixtures touch is emptied and the
// settings are written whole, so no fixture sees another's state. A fixture of a translator
// whose settings were never written ("pool6 unset") gets a fresh one.
xlat64::BpfTranslator& translator_for(const Fixture& f) {
    static std::unique_ptr<xlat64::BpfTranslator> shared;
    static std::unique_ptr<xlat64::BpfTranslator> fresh;
    xlat64::BpfLoadOptions options;
    options.l2_header_len = kEthHeaderLen;  // BPF_PROG_TEST_RUN frames start with Ethernet
    if (f.pool6_mode == Pool6Mode::kUnset) {
        fresh = std::make_unique<xlat64::BpfTranslator>(options);
        return *fresh;
    }
    if (!shared) {
        shared = std::make_unique<xlat64::BpfTranslator>(options);
    }
    for (const xlat64::EamEntry& entry : shared->eamt()) {
        shared->remove_eam(entry);
    }
    xlat64::Nat64Maps maps(shared->nat64_map_fds(), 0);
    maps.flush();
    maps.set_prefixes({});
    return *shared;
}

void setup_nat64(xlat64::BpfTranslator& translator, const Fixture& f) {
    const xlat64::Nat64Config& c = *f.nat64;
    xlat64::TranslatorSettings settings;
    if (f.pool6_mode == Pool6Mode::kPrefix) {
        settings.pool6 = f.pool6;
    }
    settings.translation = f.translation.value_or(xlat64::TranslationConfig{});
    settings.nat64 = xlat64::nat64_params(c);
    translator.set_settings(settings);

    const xlat64::Nat64MapFds fds = translator.nat64_map_fds();
    xlat64::Nat64Maps maps(fds, c.subscriber_length);
    maps.set_prefixes(xlat64::nat64_prefix_entries(c));
    if (f.free_queue) {
        maps.push_free_blocks(*f.free_queue);
    } else if (c.mode == xlat64::Nat64Mode::dynamic) {
        maps.push_free_blocks(xlat64::nat64_free_order(c, 0, xlat64::nat64_block_count(c)));
    }
    for (const auto& [host, internal] : f.n64hosts) {
        xlat_n64_host value{};
        std::memcpy(&value.internal, internal.data(), 4);
        value.block = block_of(c, internal);
        REQUIRE(bpf_map_update_elem(fds.hosts6, host.data(), &value, BPF_NOEXIST) == 0);
        REQUIRE(bpf_map_update_elem(fds.hosts4, internal.data(), host.data(), BPF_NOEXIST) == 0);
    }
    for (const auto& [prefix, block] : f.n64leases) {
        xlat64::Ipv6Address sub = xlat64::mask_address(prefix.addr, prefix.len);
        xlat_n64_sub value{};
        value.block = block;
        REQUIRE(bpf_map_update_elem(fds.subscribers, sub.data(), &value, BPF_NOEXIST) == 0);
        REQUIRE(bpf_map_update_elem(fds.owners, &block, sub.data(), BPF_NOEXIST) == 0);
    }
}

// After the packet: the hosts and leases are exactly the seeded ones plus the expected ones.
void check_nat64_state(const xlat64::BpfTranslator& translator, const Fixture& f) {
    const xlat64::Nat64Config& c = *f.nat64;
    xlat64::Nat64Maps maps(translator.nat64_map_fds(), c.subscriber_length);

    std::vector<HostRecord> want_hosts, have_hosts;
    for (const auto* list : {&f.n64hosts, &f.expect_hosts}) {
        for (const auto& [host, internal] : *list) {
            want_hosts.emplace_back(host, internal, block_of(c, internal));
        }
    }
    for (const xlat64::Nat64Host& h : maps.hosts()) {
        have_hosts.emplace_back(h.host, h.internal, h.block);
    }
    std::sort(want_hosts.begin(), want_hosts.end());
    std::sort(have_hosts.begin(), have_hosts.end());
    INFO("NAT64 hosts expected " << describe(want_hosts) << ", found " << describe(have_hosts));
    CHECK(want_hosts == have_hosts);

    std::vector<LeaseRecord> want_leases, have_leases;
    for (const auto* list : {&f.n64leases, &f.expect_leases}) {
        for (const auto& [prefix, block] : *list) {
            want_leases.emplace_back(
                xlat64::Ipv6Prefix{xlat64::mask_address(prefix.addr, prefix.len), prefix.len},
                block);
        }
    }
    for (const xlat64::Nat64Lease& l : maps.leases()) {
        have_leases.emplace_back(l.subscriber, l.block);
        auto owner = maps.owner_of(l.block);
        INFO("owner of block " << l.block);
        CHECK((owner && *owner == l.subscriber));
    }
    std::sort(want_leases.begin(), want_leases.end());
    std::sort(have_leases.begin(), have_leases.end());
    INFO("NAT64 leases expected " << describe(want_leases) << ", found " << describe(have_leases));
    CHECK(want_leases == have_leases);
}

// The fixtures of the source tree, or $XLAT64_FIXTURE_DIR (the binary copied into the VM job).
std::filesystem::path fixture_dir() {
    const char* dir = std::getenv("XLAT64_FIXTURE_DIR");
    return dir != nullptr && *dir != '\0' ? dir : XLAT64_DATAPATH_FIXTURE_DIR;
}

// The fixture's settings, EAMT and NAT64 state, written into a translator that holds nothing else.
xlat64::BpfTranslator& prepare(const Fixture& f) {
    xlat64::BpfTranslator& translator = translator_for(f);
    if (f.nat64) {
        setup_nat64(translator, f);
    } else if (f.pool6_mode != Pool6Mode::kUnset) {
        xlat64::TranslatorSettings settings;
        if (f.pool6_mode == Pool6Mode::kPrefix) {
            settings.pool6 = f.pool6;
        }
        settings.translation = f.translation.value_or(xlat64::TranslationConfig{});
        translator.set_settings(settings);
    }
    for (const auto& eam : f.eams) {
        translator.add_eam(eam);
    }
    return translator;
}

// The same program loaded as the instance at an interface's ingress (xlat_at_ingress), on the
// maps of TRANSLATOR. Loaded again only for another translator: the verifier is the cost.
xlat64::BpfTranslator& ingress_instance(const xlat64::BpfTranslator& translator, bool fresh) {
    static const xlat64::BpfTranslator* owner = nullptr;
    static std::unique_ptr<xlat64::BpfTranslator> ingress;
    if (!ingress || owner != &translator || fresh) {
        xlat64::BpfLoadOptions options;
        options.l2_header_len = kEthHeaderLen;
        options.at_ingress = true;
        options.share_maps_with = &translator;
        ingress = std::make_unique<xlat64::BpfTranslator>(options);
        owner = &translator;
    }
    return *ingress;
}

struct RunResult {
    int verdict;
    Bytes out;
};

RunResult run_program(int program_fd, const Bytes& in, bool local) {
    // Room for the 20 bytes IPv4 -> IPv6 adds, and then some.
    Bytes out(in.size() + 256);
    bpf_test_run_opts run{};
    run.sz = sizeof(run);
    run.data_in = in.data();
    run.data_size_in = static_cast<uint32_t>(in.size());
    run.data_out = out.data();
    run.data_size_out = static_cast<uint32_t>(out.size());
    run.repeat = 1;
    __sk_buff ctx{};
    ctx.ingress_ifindex = local ? 0 : 1;
    run.ctx_in = &ctx;
    run.ctx_size_in = sizeof(ctx);
    int err = bpf_prog_test_run_opts(program_fd, &run);
    INFO("bpf_prog_test_run_opts: " << err);
    REQUIRE(err == 0);
    out.resize(run.data_size_out);
    return {static_cast<int>(run.retval), out};
}

// Each counter moved by exactly what COUNTED says (index -> bytes; 1 packet each).
template <typename Snapshot, typename Name>
void check_counters(const Snapshot& before, const Snapshot& after,
                    const std::map<size_t, uint64_t>& counted, Name name) {
    for (size_t i = 0; i < after.size(); ++i) {
        auto it = counted.find(i);
        INFO("counter " << name(i));
        CHECK(after[i].packets - before[i].packets == (it != counted.end() ? 1U : 0U));
        CHECK(after[i].bytes - before[i].bytes == (it != counted.end() ? it->second : 0U));
    }
}

std::string stat_name(size_t i) {
    return xlat64::stat_infos()[i].name;
}

std::string ingress_stat_name(size_t i) {
    static const char* const names[] = {"ingress 6to4", "ingress 4to6", "ingress deferred",
                                        "ingress internal source"};
    return i < std::size(names) ? names[i] : "?";
}

void check_frame(const Bytes& want, const Bytes& out) {
    Bytes expected = want;
    adopt_ipv4_id(expected, out);
    INFO(hex_diff(expected, out));
    bool same_bytes = out == expected;
    CHECK(same_bytes);
    std::string problems = verify_checksums(out);
    INFO("checksums: " << problems);
    CHECK(problems.empty());
}

// The fixture's counter and its also_counters: index -> bytes counted (BYTES for the counter).
std::map<size_t, uint64_t> expected_counts(const Fixture& f, uint64_t bytes) {
    std::map<size_t, uint64_t> counted;
    auto counter = counter_index(f.counter);
    REQUIRE(counter.has_value());
    for (const std::string& label : f.also_counters) {
        auto index = counter_index(label);
        INFO("also_counter " << label);
        REQUIRE(index.has_value());
        REQUIRE(*index != *counter);
        counted[*index] = 0;
    }
    counted[*counter] = bytes;
    return counted;
}

void run_fixture(const Fixture& f) {
    INFO("fixture " << f.name << " (" << f.location << ")");
    std::map<size_t, uint64_t> counted = expected_counts(f, f.in.size());
    xlat64::BpfTranslator& translator = prepare(f);
    xlat64::StatsSnapshot before = translator.read_stats();

    RunResult r = run_program(translator.program_fd(), f.in, f.local);
    CHECK(r.verdict == f.verdict);
    check_counters(before, translator.read_stats(), counted, stat_name);
    if (f.nat64) {
        check_nat64_state(translator, f);
    }
    if (f.out) {
        check_frame(*f.out, r.out);
    }
}

Bytes addressed_to_lo(Bytes frame) {
    std::fill_n(frame.begin(), 6, 0);
    return frame;
}

// The same fixture through the instance at an interface's ingress, from the same state. There
// the counters see the IP packet (no Ethernet header: it is the length the device path sees).
void run_fixture_at_ingress(const Fixture& f) {
    INFO("fixture " << f.name << " (" << f.location << ") at an interface's ingress");
    const bool translated = f.ingress == Fixture::Ingress::kTranslated;
    const uint64_t ip_len = f.in.size() - kEthHeaderLen;
    const bool from_ipv6 = f.in.size() > 13 && f.in[12] == 0x86 && f.in[13] == 0xdd;
    xlat64::BpfTranslator& translator = prepare(f);
    xlat64::BpfTranslator& ingress =
        ingress_instance(translator, f.pool6_mode == Pool6Mode::kUnset);
    xlat64::StatsSnapshot before = translator.read_stats();
    auto ingress_before = translator.read_ingress_stats();

    // BPF_PROG_TEST_RUN receives the frame on lo, whose MAC address is all zeros: addressed to
    // it, the frame is PACKET_HOST, the only kind the ingress instance takes (as the stack would).
    Bytes in = addressed_to_lo(f.in);
    RunResult r = run_program(ingress.program_fd(), in, false);
    const bool refused = f.ingress == Fixture::Ingress::kInternalSource;
    CHECK(r.verdict == (translated ? TC_ACT_OK : refused ? TC_ACT_SHOT : TC_ACT_UNSPEC));
    check_counters(before, translator.read_stats(),
                   translated ? expected_counts(f, ip_len) : std::map<size_t, uint64_t>{},
                   stat_name);
    std::map<size_t, uint64_t> ingress_counted;
    if (translated) {
        ingress_counted[from_ipv6 ? XLAT_INGRESS_6TO4 : XLAT_INGRESS_4TO6] = ip_len;
    } else if (f.ingress == Fixture::Ingress::kDeferred) {
        ingress_counted[XLAT_INGRESS_DEFERRED] = ip_len;
    } else if (refused) {
        ingress_counted[XLAT_INGRESS_INTERNAL_SOURCE] = ip_len;
    }
    check_counters(ingress_before, translator.read_ingress_stats(), ingress_counted,
                   ingress_stat_name);
    if (f.nat64) {
        // Only a translated packet may have admitted a host: one left alone changed nothing.
        Fixture seeded_only = f;
        if (!translated) {
            seeded_only.expect_hosts.clear();
            seeded_only.expect_leases.clear();
        }
        check_nat64_state(translator, seeded_only);
    }
    if (translated) {
        check_frame(addressed_to_lo(*f.ingress_out), r.out);
    } else {
        INFO(hex_diff(in, r.out));
        bool unchanged = r.out == in;
        CHECK(unchanged);
    }
}

}  // namespace

TEST_CASE("datapath fixtures through BPF_PROG_TEST_RUN", "[datapath]") {
    std::vector<Fixture> fixtures = load_fixtures(fixture_dir());
    REQUIRE(!fixtures.empty());
    for (const Fixture& f : fixtures) {
        DYNAMIC_SECTION(f.name) {
            run_fixture(f);
        }
    }
}

TEST_CASE("datapath fixtures at an interface's ingress", "[datapath][ingress]") {
    std::vector<Fixture> fixtures = load_fixtures(fixture_dir());
    size_t translated = 0, deferred = 0, not_mine = 0;
    for (const Fixture& f : fixtures) {
        if (f.ingress == Fixture::Ingress::kNone) {
            continue;
        }
        translated += f.ingress == Fixture::Ingress::kTranslated;
        deferred += f.ingress == Fixture::Ingress::kDeferred;
        not_mine += f.ingress == Fixture::Ingress::kNotMine;
        DYNAMIC_SECTION(f.name) {
            run_fixture_at_ingress(f);
        }
    }
    // Every kind of outcome is exercised, or the fixtures stopped saying anything about ingress.
    CHECK(translated >= 20);
    CHECK(deferred >= 20);
    CHECK(not_mine >= 10);
}

TEST_CASE("the checksum verifier itself rejects a corrupted frame", "[datapath]") {
    // Guards against a verifier that accepts everything: take a translated fixture's expected
    // frame, which must verify, then flip one payload bit, which must not.
    std::vector<Fixture> fixtures = load_fixtures(fixture_dir());
    size_t checked = 0;
    for (const Fixture& f : fixtures) {
        if (!f.out) {
            continue;
        }
        INFO("fixture " << f.name);
        bool fragment = false;
        CHECK(verify_checksums(*f.out, &fragment).empty());
        if (fragment) {
            continue;  // no transport checksum to corrupt
        }
        Bytes corrupted = *f.out;
        corrupted.back() ^= 0x01;
        CHECK(!verify_checksums(corrupted).empty());
        ++checked;
    }
    CHECK(checked > 0);
}

TEST_CASE("BpfTranslator keeps pool6 and the EAMT as given", "[datapath][maps]") {
    using xlat64::EamEntry;
    auto v4 = [](const char* text) { return *xlat64::parse_ipv4_prefix(text); };
    auto v6 = [](const char* text) { return *xlat64::parse_ipv6_prefix(text); };
    xlat64::BpfTranslator translator(xlat64::BpfLoadOptions{});

    CHECK(!translator.pool6().has_value());  // never configured
    translator.set_pool6(v6("2001:db8:64::/96"));
    REQUIRE(translator.pool6().has_value());
    CHECK(*translator.pool6() == v6("2001:db8:64::/96"));
    translator.set_pool6(std::nullopt);
    CHECK(!translator.pool6().has_value());
    CHECK_THROWS_WITH(translator.set_pool6(v6("2001:db8::/33")),
                      Catch::Contains("RFC 6052 allows only"));

    EamEntry wide{v4("192.0.2.0/24"), v6("2001:db8:1::/120")};
    EamEntry nested{v4("192.0.2.128/25"), v6("2001:db8:2::/121")};
    EamEntry host{v4("198.51.100.7/32"), v6("2001:db8:3::7/128")};
    translator.add_eam(nested);
    translator.add_eam(host);
    translator.add_eam(wide);
    CHECK(translator.eamt() == std::vector<EamEntry>{wide, nested, host});

    // Only the entry exactly as given is removed: same IPv4 prefix, other IPv6 side stays.
    translator.remove_eam(EamEntry{v4("192.0.2.128/25"), v6("2001:db8:9::/121")});
    CHECK(translator.eamt().size() == 3);
    translator.remove_eam(nested);
    CHECK(translator.eamt() == std::vector<EamEntry>{wide, host});
    translator.remove_eam(nested);  // already gone: not an error
    CHECK_THROWS_WITH(translator.add_eam(EamEntry{v4("192.0.2.0/24"), v6("2001:db8:1::/64")}),
                      Catch::Contains("same number of suffix bits"));

    CHECK(std::string(xlat64::stat_infos()[XLAT_STAT_NO_SRC_MAPPING].name) == "no_source_mapping");
    CHECK(translator.program_tag().size() == 16);
    CHECK(translator.program_id() != 0);
}

// BpfTranslator answers eamt() from its record of its own writes after the first read (issue 7:
// reading a million-entry trie back on every reload took seconds). A second translator on the
// same pins reads the kernel itself: after any mix of adds, overwrites and removals both agree.
TEST_CASE("BpfTranslator's EAMT record matches the kernel's tries", "[datapath][maps]") {
    using xlat64::EamEntry;
    const std::filesystem::path pins = "/sys/fs/bpf/xlat64-test-eamt-" + std::to_string(::getpid());
    std::filesystem::create_directories(pins);
    struct RemovePins {
        std::filesystem::path dir;
        ~RemovePins() { xlat64::BpfTranslator::remove_pins(dir); }
    } remove_pins{pins};

    xlat64::BpfTranslator writer(xlat64::BpfLoadOptions{pins, 14});
    auto entry = [](uint32_t v4_host, uint32_t v6_host) {
        EamEntry e{*xlat64::parse_ipv4_prefix("192.0.2.0/32"),
                   *xlat64::parse_ipv6_prefix("2001:db8:ee::/128")};
        e.ipv4.addr[3] = static_cast<uint8_t>(v4_host);
        e.ipv6.addr[14] = static_cast<uint8_t>(v6_host >> 8);
        e.ipv6.addr[15] = static_cast<uint8_t>(v6_host);
        return e;
    };
    CHECK(writer.eamt().empty());  // the first read: from the (new) kernel maps
    uint32_t seed = 7;
    auto next = [&](uint32_t bound) {
        seed = seed * 1103515245 + 12345;
        return (seed >> 8) % bound;
    };
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 200; ++i) {
            const EamEntry e = entry(next(64), next(1024));
            switch (next(3)) {
                case 0:
                    writer.add_eam(e);
                    break;
                case 1:  // usually not the entry the prefix holds: must leave it alone
                    writer.remove_eam(e);
                    break;
                default:
                    for (const EamEntry& held : writer.eamt()) {
                        if (held.ipv4 == e.ipv4) {
                            writer.remove_eam(held);
                        }
                    }
            }
        }
        // The batched forms the reconciler uses for runs of changes (issue 7).
        std::vector<EamEntry> batch;
        for (uint32_t i = 0; i < 40; ++i) {
            batch.push_back(entry(64 + i, next(1024)));
        }
        writer.add_eams(batch);
        std::vector<EamEntry> doomed;
        for (const EamEntry& held : writer.eamt()) {
            if (next(2) == 0) {
                doomed.push_back(held);
            } else if (next(2) == 0) {  // not what the prefix holds: stays
                doomed.push_back(EamEntry{held.ipv4, entry(0, 1023).ipv6});
            }
        }
        writer.remove_eams(doomed);
        xlat64::BpfTranslator reader(xlat64::BpfLoadOptions{pins, 14});
        INFO("round " << round);
        CHECK(reader.eamt() == writer.eamt());
        CHECK(reader.eamt_size() == writer.eamt_size());
    }
    CHECK(!writer.eamt().empty());
}

// The import's bulk claims and leases (xlat64_n64_batch, one bpf() call per 1024 subscribers)
// against the per-block calls they replace, on the same queue and maps: stale and already owned
// blocks in the queue, a subscriber that holds a lease, a pool that runs dry, a lease superseded.
// The two paths may hand out blocks in another order; what each subscriber ends up with must be
// equally valid, and the maps must hold the same sets.
TEST_CASE("the import's batched claims and leases do what the per-block calls do",
          "[datapath][nat64]") {
    constexpr uint32_t kBlocks = 2048;
    constexpr uint32_t kOwnedBlock = 7;
    constexpr size_t kSubscribers = 2100;
    constexpr size_t kLeased = 5;  // holds kOwnedBlock before the claims
    constexpr uint64_t kNow = 123456789;
    auto subscriber = [](size_t i) {
        return *xlat64::parse_ipv6_prefix("2001:db8:100:" + std::to_string(i) + "::/64");
    };
    std::vector<xlat64::Ipv6Prefix> subscribers;
    for (size_t i = 0; i < kSubscribers; ++i) {
        subscribers.push_back(subscriber(i));
    }
    std::map<bool, std::set<uint32_t>> claimed_by_path;
    for (bool batched : {true, false}) {
        INFO((batched ? "batched" : "per block"));
        xlat64::BpfTranslator translator(xlat64::BpfLoadOptions{});
        xlat64::Nat64MapFds fds = translator.nat64_map_fds();
        REQUIRE(fds.batch >= 0);
        REQUIRE(fds.batch_program >= 0);
        if (!batched) {
            fds.batch = fds.batch_program = -1;
        }
        xlat64::Nat64Maps maps(fds, 64);
        // Five stale blocks first: the program gives up after four (XLAT_N64_BATCH_RETRY).
        std::vector<uint32_t> queue = {kBlocks,     kBlocks + 1, kBlocks + 2,
                                       kBlocks + 3, kBlocks + 4, kOwnedBlock};
        for (uint32_t b = 0; b < kBlocks; ++b) {
            queue.push_back(b);  // kOwnedBlock a second time: its owner keeps it
        }
        maps.push_free_blocks(queue);
        REQUIRE(maps.claim_block(kOwnedBlock, subscribers[kLeased]));
        maps.set_lease(subscribers[kLeased], kOwnedBlock, 1);

        const std::vector<xlat64::Nat64Claim> claims = maps.claim_blocks(subscribers, kBlocks);
        // kBlocks - 1 free blocks for the subscribers without one; the next finds none.
        REQUIRE(claims.size() == kBlocks + 1);
        CHECK(claims.back().kind == xlat64::Nat64Claim::Kind::pool_empty);
        CHECK(claims[kLeased].kind == xlat64::Nat64Claim::Kind::has_lease);
        std::vector<xlat64::Nat64Owner> leases;
        std::set<uint32_t>& claimed = claimed_by_path[batched];
        for (size_t i = 0; i + 1 < claims.size(); ++i) {
            if (i == kLeased) {
                continue;
            }
            INFO("subscriber " << i);
            REQUIRE(claims[i].kind == xlat64::Nat64Claim::Kind::claimed);
            CHECK(claims[i].block < kBlocks);
            CHECK(claimed.insert(claims[i].block).second);
            CHECK(maps.owner_of(claims[i].block) == std::optional(subscribers[i]));
            leases.push_back({subscribers[i], claims[i].block});
        }
        CHECK(claimed.size() == kBlocks - 1);
        CHECK(!claimed.count(kOwnedBlock));
        CHECK(!maps.pop_free_block().has_value());
        CHECK(maps.owners().size() == kBlocks);

        // A subscriber that got a lease meanwhile (the data path) is superseded, in a later batch.
        const size_t superseded_at = 1500;
        leases.insert(leases.begin() + superseded_at, {subscribers[kLeased], kBlocks - 1});
        xlat64::Nat64LeaseProgress progress;
        maps.add_leases(leases, kNow, progress);
        CHECK(progress.done == leases.size());
        CHECK(progress.superseded == std::vector<size_t>{superseded_at});
        std::map<xlat64::Ipv6Prefix, xlat64::Nat64Lease> have;
        for (const xlat64::Nat64Lease& l : maps.leases()) {
            have[l.subscriber] = l;
        }
        REQUIRE(have.size() == kBlocks);
        CHECK(have.at(subscribers[kLeased]).block == kOwnedBlock);
        CHECK(have.at(subscribers[kLeased]).allocated_ns == 1);
        for (size_t i = 0; i < leases.size(); ++i) {
            if (i != superseded_at) {
                INFO("lease " << i);
                CHECK(have.at(leases[i].subscriber).block == leases[i].block);
                CHECK(have.at(leases[i].subscriber).allocated_ns == kNow);
            }
        }
    }
    CHECK(claimed_by_path[true] == claimed_by_path[false]);
}
