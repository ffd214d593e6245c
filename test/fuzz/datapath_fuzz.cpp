// Datapath fuzzer (DESIGN.md, testing layer 4): random and mutated packets through the real tc
// program with BPF_PROG_TEST_RUN. Seeds are the input frames of every datapath fixture
// (test/datapath/fixtures); each round takes one, mutates it (bit flips, byte overwrites with
// interesting values, header fields, truncation, extension, splicing of another seed), repairs
// its checksums half of the time so that it gets past the "input was already broken" excuse, or
// makes a random frame, and runs it. The invariants, checked for every packet:
//   - the program never fails to run, and returns TC_ACT_SHOT or TC_ACT_REDIRECT only;
//   - exactly one counter counts each packet (besides nat64_hosts_added and
//     nat64_blocks_allocated, which count side effects with 0 bytes);
//   - what it redirects is a well-formed IPv4 or IPv6 packet whose length fields match the
//     frame, whose IPv4 header checksum is right, and whose transport checksum is right
//     whenever the input's was (a translator adjusts checksums; it must not break good ones);
//   - every address it puts in an IPv6 header is inside pool6, an EAM IPv6 prefix or the
//     RFC 6791 pool, and every IPv4 address is a valid mapping of one (EAM IPv4 prefix, any
//     address through pool6 except the ones RFC 6052 section 3.1 forbids, the RFC 6791 pool).
// A quarter of each translator's packets go to its instance for an interface's ingress
// (xlat_at_ingress, translation.ingress_interfaces) instead, on the same maps. There:
//   - the verdict is TC_ACT_OK (translated: the checks above apply to its output),
//     TC_ACT_UNSPEC (left to the device path: the frame must come back unchanged, or cut to the
//     length its IP header gives, and no counter may count it) or TC_ACT_SHOT (a helper failed
//     mid-rewrite, counted; or, with NAT64, an IPv4 packet from the internal pool, counted by
//     the ingress counter "internal source" alone).
// Every packet goes to one of three translators: the one above (half of the packets), and two
// with stateful NAT64 on top (xlat64_abi.h, "NAT64 host mapping"), deterministic and dynamic,
// configured as the NAT64 fixtures are (and seeded with their hosts) so that mutated seeds reach
// the admission paths. For those, in addition:
//   - an IPv6 address in an admitted NAT64 prefix is allowed only as the translation of an
//     internal IPv4 address whose holder it is (xlat_n64_host4), and never in a packet that
//     stayed IPv6 (a NAT64 host is never hairpinned);
//   - an internal IPv4 address appears only as the source of a translated IPv6 packet, and it
//     is the address its IPv6 source holds (xlat_n64_host6).
// The NAT64 maps are flushed (and reseeded) every 4096 packets of a translator, so the hosts and
// blocks do not simply run out.
// Usage: datapath_fuzz [--seconds N] [--iterations N] [--seed N] [--fixtures DIR]
// Exits 1 at the first violation, printing the input frame as hex (a new fixture candidate).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "daemon/bpf_translator.h"
#include "daemon/nat64_layout.h"
#include "daemon/nat64_maps.h"
#include "test/datapath/packet_checks.h"

using namespace xlat64_test;

namespace {

struct Options {
    double seconds = 10;
    uint64_t iterations = 0;  // 0: until the time is up
    uint64_t seed = 0;        // 0: from the clock
    std::filesystem::path fixtures = XLAT64_DATAPATH_FIXTURE_DIR;
};

// The NAT64 hosts the fixtures seed ("n64host IPV6 INTERNAL4").
std::vector<std::pair<xlat64::Ipv6Address, xlat64::Ipv4Address>> load_hosts(
    const std::filesystem::path& dir) {
    std::vector<std::pair<xlat64::Ipv6Address, xlat64::Ipv4Address>> hosts;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".txt") {
            continue;
        }
        std::ifstream file(entry.path());
        for (std::string line; std::getline(file, line);) {
            if (line.rfind("n64host ", 0) != 0) {
                continue;
            }
            size_t space = line.find(' ', 8);
            auto v6 = xlat64::parse_ipv6_address(line.substr(8, space - 8));
            auto v4 = space == std::string::npos
                          ? std::nullopt
                          : xlat64::parse_ipv4_address(line.substr(space + 1));
            if (v6 && v4) {
                hosts.emplace_back(*v6, *v4);
            }
        }
    }
    return hosts;
}

std::vector<Bytes> load_seeds(const std::filesystem::path& dir) {
    std::vector<Bytes> seeds;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".txt") {
            continue;
        }
        std::ifstream file(entry.path());
        for (std::string line; std::getline(file, line);) {
            if (line.rfind("in ", 0) != 0) {
                continue;
            }
            Bytes frame;
            for (size_t i = 3; i + 1 < line.size(); i += 2) {
                frame.push_back(static_cast<uint8_t>(std::stoul(line.substr(i, 2), nullptr, 16)));
            }
            seeds.push_back(std::move(frame));
        }
    }
    return seeds;
}

// The mappings the fuzzer configures, and the address checks that follow from them.
const char* const kPool6 = "2001:db8:64::/96";
const std::pair<const char*, const char*> kEams[] = {
    {"192.0.2.0/24", "2001:db8:1::/120"},
    {"192.0.2.128/25", "2001:db8:2::/121"},
    {"203.0.113.0/25", "2001:db8:1::80/121"},
};
const char* const kRfc6791Pool4 = "198.18.0.0/24";
const char* const kRfc6791Pool6 = "2001:db8:6791::/96";

// The NAT64 translators' `nat64:` section: the NAT64 fixtures' (test/datapath/gen_fixtures.py).
xlat64::Nat64Config nat64_config(xlat64::Nat64Mode mode) {
    xlat64::Nat64Config c;
    c.prefixes = {*xlat64::parse_ipv6_prefix("2001:db8:a00::/48"),
                  *xlat64::parse_ipv6_prefix("2001:db8:b00::/48")};
    c.subscriber_length = 56;
    c.hosts_per_subscriber = 4;
    c.internal_pool = *xlat64::parse_ipv4_prefix("100.64.0.0/16");
    c.public_prefixes = {*xlat64::parse_ipv4_prefix("203.0.113.0/27")};
    c.ports = {1024, 65535};
    c.block_size = 2048;
    c.mode = mode;
    return c;
}

bool ipv6_allowed(const uint8_t* a) {
    xlat64::Ipv6Address addr;
    std::memcpy(addr.data(), a, 16);
    if (xlat64::contains(*xlat64::parse_ipv6_prefix(kPool6), addr) ||
        xlat64::contains(*xlat64::parse_ipv6_prefix(kRfc6791Pool6), addr)) {
        return true;
    }
    for (const auto& [v4, v6] : kEams) {
        if (xlat64::contains(*xlat64::parse_ipv6_prefix(v6), addr)) {
            return true;
        }
    }
    return false;
}

// With pool6 any IPv4 address can be a translation; what must never appear is an address that
// the program should have refused (multicast, loopback, "this network", limited broadcast).
bool ipv4_allowed(const uint8_t* a) {
    return a[0] != 0 && a[0] != 127 && a[0] < 224;
}

uint16_t csum_of(const uint8_t* data, size_t len, uint32_t sum) {
    return static_cast<uint16_t>(~fold(sum16(data, len, sum)));
}

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

// Makes the IPv4 header checksum and the transport checksum of an unfragmented frame right, so
// that the output's must be right too.
void repair(Bytes& f) {
    if (f.size() < kEthHeaderLen + 20) {
        return;
    }
    uint8_t* ip = f.data() + kEthHeaderLen;
    size_t ip_len = f.size() - kEthHeaderLen;
    uint16_t type = get16(f, 12);
    if (type == kEthTypeIpv4 && (ip[0] >> 4) == 4) {
        size_t ihl = (ip[0] & 0xf) * 4U;
        size_t tot = get16(f, kEthHeaderLen + 2);
        if (ihl < 20 || tot < ihl || tot > ip_len) {
            return;
        }
        put16(ip + 10, 0);
        put16(ip + 10, csum_of(ip, ihl, 0));
        if ((get16(f, kEthHeaderLen + 6) & 0x3fff) != 0) {
            return;
        }
        uint8_t* l4 = ip + ihl;
        size_t l4_len = tot - ihl;
        uint32_t pseudo = sum16(ip + 12, 8) + ip[9] + static_cast<uint32_t>(l4_len);
        if (ip[9] == 6 && l4_len >= 20) {
            put16(l4 + 16, 0);
            put16(l4 + 16, csum_of(l4, l4_len, pseudo));
        } else if (ip[9] == 17 && l4_len >= 8 && (l4[6] | l4[7])) {
            put16(l4 + 6, 0);
            uint16_t c = csum_of(l4, l4_len, pseudo);
            put16(l4 + 6, c == 0 ? 0xffff : c);
        } else if (ip[9] == 1 && l4_len >= 8) {
            put16(l4 + 2, 0);
            put16(l4 + 2, csum_of(l4, l4_len, 0));
        }
    } else if (type == kEthTypeIpv6 && (ip[0] >> 4) == 6) {
        size_t plen = get16(f, kEthHeaderLen + 4);
        if (plen + 40 > ip_len) {
            return;
        }
        uint8_t* l4 = ip + 40;
        uint32_t pseudo = sum16(ip + 8, 32) + ip[6] + static_cast<uint32_t>(plen);
        if (ip[6] == 6 && plen >= 20) {
            put16(l4 + 16, 0);
            put16(l4 + 16, csum_of(l4, plen, pseudo));
        } else if (ip[6] == 17 && plen >= 8) {
            put16(l4 + 6, 0);
            uint16_t c = csum_of(l4, plen, pseudo);
            put16(l4 + 6, c == 0 ? 0xffff : c);
        } else if (ip[6] == 58 && plen >= 8) {
            put16(l4 + 2, 0);
            put16(l4 + 2, csum_of(l4, plen, pseudo));
        }
    }
}

class Mutator {
  public:
    explicit Mutator(uint64_t seed) : rng_(seed) {}
    size_t below(size_t n) {
        return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
    }

    Bytes random_frame() {
        Bytes f(kEthHeaderLen + 20 + below(200));
        for (auto& b : f) {
            b = static_cast<uint8_t>(below(256));
        }
        bool v6 = below(2);
        put16(f.data() + 12, v6 ? kEthTypeIpv6 : kEthTypeIpv4);
        f[kEthHeaderLen] =
            static_cast<uint8_t>((v6 ? 0x60 : 0x45) | (below(4) == 0 ? below(16) : 0));
        return f;
    }

    void mutate(Bytes& f, const std::vector<Bytes>& seeds) {
        static const uint8_t kInteresting[] = {0,  1,  2,  4,  5,  6,  8,  11,   12,   17,   20,
                                               28, 40, 43, 44, 58, 59, 60, 0x7f, 0x80, 0xfe, 0xff};
        size_t rounds = 1 + below(6);
        for (size_t r = 0; r < rounds && f.size() > kEthHeaderLen; ++r) {
            // Mostly the headers: the first 120 bytes after Ethernet.
            size_t span = std::min<size_t>(f.size() - kEthHeaderLen, below(4) ? 120 : f.size());
            size_t pos = kEthHeaderLen + below(span);
            switch (below(7)) {
                case 0:
                    f[pos] ^= static_cast<uint8_t>(1U << below(8));
                    break;
                case 1:
                    f[pos] = kInteresting[below(sizeof(kInteresting))];
                    break;
                case 2:
                    f[pos] = static_cast<uint8_t>(below(256));
                    break;
                case 3:  // truncate (never below Ethernet + 20: the kernel refuses those)
                    f.resize(std::max<size_t>(kEthHeaderLen + 20, pos));
                    break;
                case 4:  // extend
                    f.resize(f.size() + below(64), static_cast<uint8_t>(below(256)));
                    break;
                case 5: {  // splice another seed's tail
                    const Bytes& other = seeds[below(seeds.size())];
                    if (other.size() > pos) {
                        f.resize(pos);
                        f.insert(f.end(), other.begin() + static_cast<long>(pos), other.end());
                    }
                    break;
                }
                default:  // 16-bit field
                    if (pos + 1 < f.size()) {
                        put16(f.data() + pos, static_cast<uint16_t>(below(65536)));
                    }
            }
        }
    }

  private:
    std::mt19937_64 rng_;
};

std::string hex(const Bytes& b) {
    std::string out;
    char buf[3];
    for (uint8_t byte : b) {
        std::snprintf(buf, sizeof(buf), "%02x", byte);
        out += buf;
    }
    return out;
}

// One translator the fuzzer drives, with or without NAT64.
struct Target {
    std::string name;
    std::unique_ptr<xlat64::BpfTranslator> translator;
    std::unique_ptr<xlat64::BpfTranslator> ingress;  // the same maps, xlat_at_ingress
    std::optional<xlat64::Nat64Config> nat64;
    std::unique_ptr<xlat64::Nat64Maps> maps;
    xlat64::StatsSnapshot before{};
    uint64_t runs = 0, redirected = 0, dropped = 0;
    uint64_t ingress_runs = 0, ingress_translated = 0, passed = 0;  // passed: counted nowhere
    uint64_t internal_sources = 0;  // refused at ingress: in the ingress counter only
};

bool in_admitted(const Target& t, const uint8_t* a) {
    xlat64::Ipv6Address addr;
    std::memcpy(addr.data(), a, 16);
    for (const xlat64::Ipv6Prefix& p : t.nat64->prefixes) {
        if (xlat64::contains(p, addr)) {
            return true;
        }
    }
    return false;
}

bool in_internal(const Target& t, const uint8_t* a) {
    xlat64::Ipv4Address addr;
    std::memcpy(addr.data(), a, 4);
    return xlat64::contains(t.nat64->internal_pool, addr);
}

// The IPv6 host holding internal address A (16 bytes into HOST), or false.
bool holder_of(const Target& t, const uint8_t* a, uint8_t* host) {
    return bpf_map_lookup_elem(t.translator->nat64_map_fds().hosts4, a, host) == 0;
}

// The NAT64 properties of a translated packet (see the top of the file).
std::string check_nat64(const Target& t, const Bytes& in, const Bytes& out) {
    const uint8_t* ip_in = in.data() + kEthHeaderLen;
    const uint8_t* ip_out = out.data() + kEthHeaderLen;
    bool in_v6 = get16(in, 12) == kEthTypeIpv6;
    if (get16(out, 12) == kEthTypeIpv6) {
        for (int i = 0; i < 2; ++i) {  // source, destination
            const uint8_t* a6 = ip_out + 8 + 16 * i;
            if (!in_admitted(t, a6)) {
                continue;
            }
            if (in_v6) {
                return "NAT64 host address in a packet that stayed IPv6 (hairpinned)";
            }
            const uint8_t* a4 = ip_in + 12 + 4 * i;
            uint8_t host[16];
            if (!in_internal(t, a4) || !holder_of(t, a4, host) || std::memcmp(host, a6, 16)) {
                return "NAT64 host address that is not the holder of the IPv4 address";
            }
        }
        return {};
    }
    if (in_internal(t, ip_out + 16)) {
        return "internal IPv4 address as a destination";
    }
    if (in_internal(t, ip_out + 12)) {
        xlat_n64_host value{};
        if (!in_v6 ||
            bpf_map_lookup_elem(t.translator->nat64_map_fds().hosts6, ip_in + 8, &value) != 0 ||
            std::memcmp(&value.internal, ip_out + 12, 4) != 0) {
            return "internal IPv4 source that its IPv6 source does not hold";
        }
    }
    return {};
}

// The output's problems, empty when it is acceptable.
std::string check_output(const Target& t, const Bytes& in, const Bytes& out) {
    bool in_fragment = false;
    bool in_valid = verify_checksums(in, &in_fragment).empty();
    bool out_fragment = false;
    std::string problems = verify_checksums(out, &out_fragment);
    if (!problems.empty()) {
        // Length and structure problems always count; a transport checksum only when the
        // input's was right (an adjusted wrong checksum stays wrong, as it must).
        if (problems.find("checksum") == std::string::npos || in_valid) {
            return problems;
        }
    }
    const uint8_t* ip = out.data() + kEthHeaderLen;
    if (get16(out, 12) == kEthTypeIpv6) {
        for (const uint8_t* a : {ip + 8, ip + 24}) {
            if (!ipv6_allowed(a) && !(t.nat64 && in_admitted(t, a))) {
                return "IPv6 address outside pool6, the EAMT, the RFC 6791 pool and the NAT64 "
                       "prefixes";
            }
        }
    } else if (!ipv4_allowed(ip + 12) || !ipv4_allowed(ip + 16)) {
        return "IPv4 address that no mapping may produce";
    }
    return t.nat64 ? check_nat64(t, in, out) : std::string();
}

// NAT64 maps as xlat64d starts them: admitted prefixes, the free queue (dynamic), and the
// fixtures' hosts (those inside the internal pool).
void reset_nat64(Target& t,
                 const std::vector<std::pair<xlat64::Ipv6Address, xlat64::Ipv4Address>>& hosts) {
    const xlat64::Nat64Config& c = *t.nat64;
    t.maps->flush();
    t.maps->set_prefixes(xlat64::nat64_prefix_entries(c));
    if (c.mode == xlat64::Nat64Mode::dynamic) {
        t.maps->push_free_blocks(xlat64::nat64_free_order(c, 0, xlat64::nat64_block_count(c)));
    }
    const xlat64::Nat64MapFds fds = t.translator->nat64_map_fds();
    uint32_t base = 0;
    auto pool = xlat64::mask_address(c.internal_pool.addr, c.internal_pool.len);
    std::memcpy(&base, pool.data(), 4);
    for (const auto& [host, internal] : hosts) {
        if (!xlat64::contains(c.internal_pool, internal)) {
            continue;
        }
        uint32_t addr = 0;
        std::memcpy(&addr, internal.data(), 4);
        xlat_n64_host value{};
        value.internal = addr;
        value.block = (ntohl(addr) - ntohl(base)) / c.hosts_per_subscriber;
        // A host or address seeded twice keeps its first entry.
        if (bpf_map_update_elem(fds.hosts4, internal.data(), host.data(), BPF_NOEXIST) == 0 &&
            bpf_map_update_elem(fds.hosts6, host.data(), &value, BPF_NOEXIST) != 0) {
            bpf_map_delete_elem(fds.hosts4, internal.data());
        }
    }
}

std::unique_ptr<Target> make_target(const std::string& name,
                                    std::optional<xlat64::Nat64Mode> nat64_mode) {
    auto t = std::make_unique<Target>();
    t->name = name;
    xlat64::BpfLoadOptions load;
    load.l2_header_len = kEthHeaderLen;
    t->translator = std::make_unique<xlat64::BpfTranslator>(load);
    xlat64::BpfLoadOptions at_ingress = load;
    at_ingress.at_ingress = true;
    at_ingress.share_maps_with = t->translator.get();
    t->ingress = std::make_unique<xlat64::BpfTranslator>(at_ingress);
    xlat64::TranslatorSettings settings;
    settings.pool6 = xlat64::parse_ipv6_prefix(kPool6);
    settings.translation.rfc6791_pool4 = xlat64::parse_ipv4_prefix(kRfc6791Pool4);
    settings.translation.rfc6791_pool6 = xlat64::parse_ipv6_prefix(kRfc6791Pool6);
    if (nat64_mode) {
        t->nat64 = nat64_config(*nat64_mode);
        settings.nat64 = xlat64::nat64_params(*t->nat64);
        t->maps = std::make_unique<xlat64::Nat64Maps>(t->translator->nat64_map_fds(),
                                                      t->nat64->subscriber_length);
    }
    t->translator->set_settings(settings);
    for (const auto& [v4, v6] : kEams) {
        t->translator->add_eam({*xlat64::parse_ipv4_prefix(v4), *xlat64::parse_ipv6_prefix(v6)});
    }
    return t;
}

// Counters that count a side effect of a packet (0 bytes) besides the one that counts its fate.
bool side_counter(size_t i) {
    return i == XLAT_STAT_N64_HOST_ADDED || i == XLAT_STAT_N64_BLOCK_ALLOCATED;
}

std::string check_counters(const Target& t) {
    xlat64::StatsSnapshot after = t.translator->read_stats();
    uint64_t counted = 0;
    for (size_t i = 0; i < after.size(); ++i) {
        uint64_t packets = after[i].packets - t.before[i].packets;
        if (!side_counter(i)) {
            counted += packets;
        } else if (after[i].bytes != t.before[i].bytes) {
            return std::string(xlat64::stat_infos()[i].name) + " counted bytes";
        } else if (packets > t.runs) {
            return std::string(xlat64::stat_infos()[i].name) + " counted more than every packet";
        }
    }
    if (counted != t.runs - t.passed) {
        return "counters say " + std::to_string(counted) + " packets after " +
               std::to_string(t.runs - t.passed) +
               " not left to the device path (each must be counted exactly once)";
    }
    return {};
}

// The length the IP header of FRAME gives it (Ethernet header included), or 0 when it says none.
size_t ip_frame_length(const Bytes& frame) {
    uint16_t type = frame.size() >= kEthHeaderLen ? get16(frame, 12) : 0;
    if (type == kEthTypeIpv6 && frame.size() >= kEthHeaderLen + 40) {
        return kEthHeaderLen + 40 + get16(frame, kEthHeaderLen + 4);
    }
    if (type == kEthTypeIpv4 && frame.size() >= kEthHeaderLen + 20) {
        return kEthHeaderLen + get16(frame, kEthHeaderLen + 2);
    }
    return 0;
}

// A packet through the ingress instance: translated (checked like a redirected one), left alone
// unchanged (a frame longer than its IP packet may come back cut to it), or dropped by a failed
// helper.
std::string check_ingress(Target& t, uint32_t verdict, const Bytes& in, const Bytes& out) {
    ++t.ingress_runs;
    if (verdict == static_cast<uint32_t>(TC_ACT_UNSPEC)) {
        ++t.passed;
        size_t cut = ip_frame_length(in);
        bool same = out == in || (cut != 0 && cut < in.size() && out.size() == cut &&
                                  std::equal(out.begin(), out.end(), in.begin()));
        return same ? std::string() : "left to the device path, but changed:\n  out " + hex(out);
    }
    if (verdict == TC_ACT_OK) {
        ++t.ingress_translated;
        return check_output(t, in, out);
    }
    if (verdict == TC_ACT_SHOT) {
        ++t.dropped;
        uint64_t refused = t.translator->read_ingress_stats()[XLAT_INGRESS_INTERNAL_SOURCE].packets;
        if (refused == t.internal_sources) {
            return {};  // a failed helper, in the translator's counters
        }
        ++t.internal_sources;
        ++t.passed;
        bool ipv4 = in.size() >= kEthHeaderLen + 20 && get16(in, 12) == kEthTypeIpv4;
        if (refused != t.internal_sources || !t.nat64 || !ipv4) {
            return "refused at ingress as an internal source, but not IPv4 with NAT64 on";
        }
        return {};
    }
    return "verdict at ingress " + std::to_string(verdict);
}

int run(const Options& opt) {
    std::vector<Bytes> seeds = load_seeds(opt.fixtures);
    if (seeds.empty()) {
        std::cerr << "datapath_fuzz: no seeds in " << opt.fixtures << "\n";
        return 2;
    }
    const auto hosts = load_hosts(opt.fixtures);
    // Half of the packets go to the plain translator, a quarter to each NAT64 one.
    std::vector<std::unique_ptr<Target>> targets;
    targets.push_back(make_target("plain", std::nullopt));
    targets.push_back(make_target("nat64-deterministic", xlat64::Nat64Mode::deterministic));
    targets.push_back(make_target("nat64-dynamic", xlat64::Nat64Mode::dynamic));
    for (auto& t : targets) {
        if (t->nat64) {
            reset_nat64(*t, hosts);
        }
        t->before = t->translator->read_stats();
    }

    uint64_t seed =
        opt.seed
            ? opt.seed
            : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::cout << "datapath_fuzz: seed " << seed << ", " << seeds.size() << " seed frames, "
              << hosts.size() << " NAT64 seed hosts\n";
    Mutator m(seed);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(opt.seconds));
    uint64_t n = 0;
    for (;; ++n) {
        if (opt.iterations ? n >= opt.iterations : std::chrono::steady_clock::now() >= deadline) {
            break;
        }
        Target& t = *targets[m.below(2) ? 0 : 1 + m.below(2)];
        if (t.nat64 && t.runs != 0 && t.runs % 4096 == 0) {
            reset_nat64(t, hosts);  // counters are not touched: the count goes on
        }
        Bytes in = m.below(8) == 0 ? m.random_frame() : seeds[m.below(seeds.size())];
        m.mutate(in, seeds);
        // BPF_PROG_TEST_RUN refuses frames shorter than Ethernet + the IP header it announces.
        size_t min_len = kEthHeaderLen + (get16(in, 12) == kEthTypeIpv6 ? 40 : 20);
        if (in.size() < min_len) {
            in.resize(min_len);
        }
        if (m.below(2)) {
            repair(in);
        }
        Bytes out(in.size() + 512);
        const bool at_ingress = m.below(4) == 0;
        // BPF_PROG_TEST_RUN receives on lo (MAC address zero): most ingress frames are addressed
        // to it (PACKET_HOST), the rest must be left alone as frames for another host.
        if (at_ingress && m.below(4) != 0 && in.size() >= 6) {
            std::fill_n(in.begin(), 6, 0);
        }
        __sk_buff ctx{};
        ctx.ingress_ifindex = at_ingress || m.below(4) ? 1 : 0;
        bpf_test_run_opts run{};
        run.sz = sizeof(run);
        run.data_in = in.data();
        run.data_size_in = static_cast<uint32_t>(in.size());
        run.data_out = out.data();
        run.data_size_out = static_cast<uint32_t>(out.size());
        run.ctx_in = &ctx;
        run.ctx_size_in = sizeof(ctx);
        run.repeat = 1;
        int err =
            bpf_prog_test_run_opts((at_ingress ? t.ingress : t.translator)->program_fd(), &run);
        ++t.runs;
        std::string problem;
        if (err != 0) {
            problem = "BPF_PROG_TEST_RUN failed: " + std::string(std::strerror(-err));
        } else if (at_ingress) {
            out.resize(run.data_size_out);
            problem = check_ingress(t, run.retval, in, out);
        } else if (run.retval != TC_ACT_SHOT && run.retval != TC_ACT_REDIRECT) {
            problem = "verdict " + std::to_string(run.retval);
        } else if (run.retval == TC_ACT_REDIRECT) {
            out.resize(run.data_size_out);
            problem = check_output(t, in, out);
            ++t.redirected;
        } else {
            ++t.dropped;
        }
        if (problem.empty() && t.runs % 64 == 1) {
            problem = check_counters(t);
        }
        if (!problem.empty()) {
            std::cerr << "datapath_fuzz: iteration " << n << " (" << t.name << "): " << problem
                      << "\n  in  " << hex(in) << "\n";
            if (run.retval == TC_ACT_REDIRECT || (at_ingress && run.retval == TC_ACT_OK)) {
                std::cerr << "  out " << hex(out) << "\n";
            }
            return 1;
        }
    }
    for (const auto& t : targets) {
        std::string problem = check_counters(*t);
        if (!problem.empty()) {
            std::cerr << "datapath_fuzz: " << t->name << ": " << problem << "\n";
            return 1;
        }
        std::cout << "datapath_fuzz: " << t->name << ": " << t->runs << " packets, "
                  << t->redirected << " translated, " << t->dropped << " dropped, "
                  << t->ingress_runs << " at ingress (" << t->ingress_translated
                  << " translated there, " << t->passed << " left to the device path)";
        if (t->nat64) {
            xlat64::StatsSnapshot s = t->translator->read_stats();
            std::cout << ", " << s[XLAT_STAT_N64_HOST_ADDED].packets << " hosts added, "
                      << s[XLAT_STAT_N64_BLOCK_ALLOCATED].packets << " blocks leased";
        }
        std::cout << "\n";
    }
    std::cout << "datapath_fuzz: " << n << " packets, no violation\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "datapath_fuzz: " << arg << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--seconds") {
            opt.seconds = std::stod(value());
        } else if (arg == "--iterations") {
            opt.iterations = std::stoull(value());
        } else if (arg == "--seed") {
            opt.seed = std::stoull(value());
        } else if (arg == "--fixtures") {
            opt.fixtures = value();
        } else {
            std::cerr << "usage: datapath_fuzz [--seconds N] [--iterations N] [--seed N] "
                         "[--fixtures DIR]\n";
            return 2;
        }
    }
    try {
        return run(opt);
    } catch (const std::exception& e) {
        std::cerr << "datapath_fuzz: " << e.what() << "\n";
        return 2;
    }
}
