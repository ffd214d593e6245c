// Datapath fuzzer (DESIGN.md, testing layer 4): random and mutated packets through the real tc
// program with BPF_PROG_TEST_RUN. Seeds are the input frames of every datapath fixture
// (test/datapath/fixtures); each round takes one, mutates it (bit flips, byte overwrites with
// interesting values, header fields, truncation, extension, splicing of another seed), repairs
// its checksums half of the time so that it gets past the "input was already broken" excuse, or
// makes a random frame, and runs it. The invariants, checked for every packet:
//   - the program never fails to run, and returns TC_ACT_SHOT or TC_ACT_REDIRECT only;
//   - exactly one counter counts each packet;
//   - what it redirects is a well-formed IPv4 or IPv6 packet whose length fields match the
//     frame, whose IPv4 header checksum is right, and whose transport checksum is right
//     whenever the input's was (a translator adjusts checksums; it must not break good ones);
//   - every address it puts in an IPv6 header is inside pool6, an EAM IPv6 prefix or the
//     RFC 6791 pool, and every IPv4 address is a valid mapping of one (EAM IPv4 prefix, any
//     address through pool6 except the ones RFC 6052 section 3.1 forbids, the RFC 6791 pool).
// Usage: datapath_fuzz [--seconds N] [--iterations N] [--seed N] [--fixtures DIR]
// Exits 1 at the first violation, printing the input frame as hex (a new fixture candidate).
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "daemon/bpf_translator.h"
#include "test/datapath/packet_checks.h"

using namespace xlat64_test;

namespace {

struct Options {
    double seconds = 10;
    uint64_t iterations = 0;  // 0: until the time is up
    uint64_t seed = 0;        // 0: from the clock
    std::filesystem::path fixtures = XLAT64_DATAPATH_FIXTURE_DIR;
};

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

// The output's problems, empty when it is acceptable.
std::string check_output(const Bytes& in, const Bytes& out) {
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
        if (!ipv6_allowed(ip + 8) || !ipv6_allowed(ip + 24)) {
            return "IPv6 address outside pool6, the EAMT and the RFC 6791 pool";
        }
    } else if (!ipv4_allowed(ip + 12) || !ipv4_allowed(ip + 16)) {
        return "IPv4 address that no mapping may produce";
    }
    return {};
}

int run(const Options& opt) {
    std::vector<Bytes> seeds = load_seeds(opt.fixtures);
    if (seeds.empty()) {
        std::cerr << "datapath_fuzz: no seeds in " << opt.fixtures << "\n";
        return 2;
    }
    xlat64::BpfLoadOptions load;
    load.l2_header_len = kEthHeaderLen;
    xlat64::BpfTranslator translator(load);
    xlat64::TranslatorSettings settings;
    settings.pool6 = xlat64::parse_ipv6_prefix(kPool6);
    settings.translation.rfc6791_pool4 = xlat64::parse_ipv4_prefix(kRfc6791Pool4);
    settings.translation.rfc6791_pool6 = xlat64::parse_ipv6_prefix(kRfc6791Pool6);
    translator.set_settings(settings);
    for (const auto& [v4, v6] : kEams) {
        translator.add_eam({*xlat64::parse_ipv4_prefix(v4), *xlat64::parse_ipv6_prefix(v6)});
    }

    uint64_t seed =
        opt.seed
            ? opt.seed
            : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::cout << "datapath_fuzz: seed " << seed << ", " << seeds.size() << " seed frames\n";
    Mutator m(seed);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(opt.seconds));
    uint64_t n = 0, redirected = 0, dropped = 0;
    xlat64::StatsSnapshot before = translator.read_stats();
    for (;; ++n) {
        if (opt.iterations ? n >= opt.iterations : std::chrono::steady_clock::now() >= deadline) {
            break;
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
        __sk_buff ctx{};
        ctx.ingress_ifindex = m.below(4) ? 1 : 0;
        bpf_test_run_opts run{};
        run.sz = sizeof(run);
        run.data_in = in.data();
        run.data_size_in = static_cast<uint32_t>(in.size());
        run.data_out = out.data();
        run.data_size_out = static_cast<uint32_t>(out.size());
        run.ctx_in = &ctx;
        run.ctx_size_in = sizeof(ctx);
        run.repeat = 1;
        int err = bpf_prog_test_run_opts(translator.program_fd(), &run);
        std::string problem;
        if (err != 0) {
            problem = "BPF_PROG_TEST_RUN failed: " + std::string(std::strerror(-err));
        } else if (run.retval != TC_ACT_SHOT && run.retval != TC_ACT_REDIRECT) {
            problem = "verdict " + std::to_string(run.retval);
        } else if (run.retval == TC_ACT_REDIRECT) {
            out.resize(run.data_size_out);
            problem = check_output(in, out);
            ++redirected;
        } else {
            ++dropped;
        }
        if (problem.empty() && n % 64 == 0) {
            xlat64::StatsSnapshot after = translator.read_stats();
            uint64_t counted = 0;
            for (size_t i = 0; i < after.size(); ++i) {
                counted += after[i].packets - before[i].packets;
            }
            if (counted != n + 1) {
                problem = "counters say " + std::to_string(counted) + " packets after " +
                          std::to_string(n + 1) + " (each must be counted exactly once)";
            }
        }
        if (!problem.empty()) {
            std::cerr << "datapath_fuzz: iteration " << n << ": " << problem << "\n  in  "
                      << hex(in) << "\n";
            if (run.retval == TC_ACT_REDIRECT) {
                std::cerr << "  out " << hex(out) << "\n";
            }
            return 1;
        }
    }
    std::cout << "datapath_fuzz: " << n << " packets, " << redirected << " translated, " << dropped
              << " dropped, no violation\n";
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
