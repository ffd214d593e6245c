#include "config/nat64_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <map>
#include <type_traits>

#include "config/yaml_reader.h"

namespace xlat64 {
namespace {

using yaml_reader::IssueList;
using yaml_reader::Quoting;
using Value = yaml_reader::Field;

// This section's messages show control characters as '?', unlike the rest of the file.
constexpr Quoting kQuoting = Quoting::replace;

std::string quote(const std::string& text) {
    return yaml_reader::quote(text, kQuoting);
}

std::string describe(const YAML::Node& node) {
    return yaml_reader::describe(node, kQuoting);
}

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxIdleTimeout = 7 * 24 * 3600;

// The keys of the section, in the order the README documents them.
const std::vector<std::string> kKeys = {"prefixes",
                                        "subscriber_length",
                                        "hosts_per_subscriber",
                                        "internal_pool",
                                        "public_prefixes",
                                        "ports",
                                        "block_size",
                                        "mode",
                                        "idle_timeout",
                                        "session_counters",
                                        "table"};

// The pools an internal address may come from: never routed on the Internet, so the internal
// pool can never hide a real destination.
const std::vector<std::pair<Ipv4Prefix, const char*>> kInternalRanges = {
    {{{100, 64, 0, 0}, 10}, "RFC 6598 shared address space"},
    {{{10, 0, 0, 0}, 8}, "RFC 1918"},
    {{{172, 16, 0, 0}, 12}, "RFC 1918"},
    {{{192, 168, 0, 0}, 16}, "RFC 1918"},
};

// The section's values by key; unknown and duplicate keys are reported, as everywhere else.
std::map<std::string, Value> read_section(const Value& section, IssueList& issues) {
    static const yaml_reader::MapRules rules{.null_is_empty = false,
                                             .require_key_names = false,
                                             .unknown_key_quoting = kQuoting,
                                             .found_quoting = kQuoting,
                                             .duplicate_line_of_value = true};
    return yaml_reader::read_map(section, kKeys, issues, rules);
}

std::optional<std::string> scalar(const Value& value, const std::string& expected,
                                  IssueList& issues) {
    return yaml_reader::read_scalar(value, expected, issues, kQuoting);
}

std::optional<uint64_t> integer(const Value& value, uint64_t min, uint64_t max, IssueList& issues) {
    return yaml_reader::read_uint(value, min, max, issues, kQuoting);
}

template <typename Prefix>
std::optional<Prefix> prefix(const Value& value, IssueList& issues) {
    constexpr bool v4 = std::is_same_v<Prefix, Ipv4Prefix>;
    using Family = std::conditional_t<v4, yaml_reader::Ipv4Family, yaml_reader::Ipv6Family>;
    static const yaml_reader::PrefixRules rules{
        .example = v4 ? "203.0.113.0/24" : "2001:db8:100::/40",
        .suggest_masked = false,
        .quoting = kQuoting};
    return yaml_reader::read_prefix<Family>(value, issues, rules);
}

// A list of prefixes, none overlapping another.
template <typename Prefix>
std::vector<std::pair<Prefix, Value>> prefix_list(const Value& value, IssueList& issues) {
    std::vector<std::pair<Prefix, Value>> out;
    if (!value.node.IsSequence() || value.node.size() == 0) {
        issues.add(value, "expected a non-empty list of prefixes, found " + describe(value.node));
        return out;
    }
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        Value item{value.key + "[" + std::to_string(i) + "]", node, node.Mark()};
        auto parsed = prefix<Prefix>(item, issues);
        if (!parsed) {
            continue;
        }
        for (const auto& [earlier, where] : out) {
            if (overlaps(earlier, *parsed)) {
                issues.add(item, to_string(*parsed) + " overlaps " + to_string(earlier) + " (" +
                                     where.key + "); give each address once");
            }
        }
        out.emplace_back(*parsed, item);
    }
    return out;
}

std::optional<PortRange> port_range(const Value& value, IssueList& issues) {
    const std::string expected = "a port range FIRST-LAST within 1024-65535, e.g. 1024-65535";
    auto text = scalar(value, expected, issues);
    if (!text) {
        return std::nullopt;
    }
    auto dash = text->find('-');
    auto first = yaml_reader::parse_uint(std::string_view(*text).substr(0, dash));
    auto last = dash == std::string::npos
                    ? std::nullopt
                    : yaml_reader::parse_uint(std::string_view(*text).substr(dash + 1));
    if (!first || !last || *first > *last || *last > 65535) {
        issues.add(value, "expected " + expected + ", found " + describe(value.node));
        return std::nullopt;
    }
    if (*first < 1024) {
        issues.add(value,
                   "ports 0-1023 are well-known ports, which a NAT never hands to "
                   "subscribers; start the range at 1024 or above");
        return std::nullopt;
    }
    return PortRange{static_cast<uint16_t>(*first), static_cast<uint16_t>(*last)};
}

bool in_internal_range(const Ipv4Prefix& pool) {
    return std::any_of(kInternalRanges.begin(), kInternalRanges.end(), [&](const auto& range) {
        return range.first.len <= pool.len && contains(range.first, pool.addr);
    });
}

// 2^bits, saturating.
uint64_t power_of_two(unsigned bits) {
    return bits >= 64 ? kSaturated : uint64_t{1} << bits;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
    return a > kSaturated - b ? kSaturated : a + b;
}

uint64_t saturating_mul(uint64_t a, uint64_t b) {
    return b != 0 && a > kSaturated / b ? kSaturated : a * b;
}

std::string count_text(uint64_t n) {
    return n == kSaturated ? "more than 2^64" : std::to_string(n);
}

struct Located {
    Nat64Config config;
    std::map<std::string, Value> values;
    Value section;
};

const Value& where(const Located& located, const std::string& name) {
    auto it = located.values.find(name);
    return it != located.values.end() ? it->second : located.section;
}

void read_values(Located& in, IssueList& issues) {
    Nat64Config& c = in.config;
    auto& v = in.values;
    if (v.count("prefixes")) {
        for (auto& [p, _] : prefix_list<Ipv6Prefix>(v["prefixes"], issues)) {
            c.prefixes.push_back(p);
        }
    } else {
        issues.add(in.section,
                   "the section has no prefixes key; list the IPv6 prefixes whose "
                   "hosts may use NAT64, e.g. [2001:db8:100::/40]");
    }
    if (v.count("subscriber_length")) {
        c.subscriber_length = static_cast<uint8_t>(
            integer(v["subscriber_length"], 1, 128, issues).value_or(c.subscriber_length));
    }
    if (v.count("hosts_per_subscriber")) {
        c.hosts_per_subscriber = static_cast<uint32_t>(
            integer(v["hosts_per_subscriber"], 1, 65536, issues).value_or(c.hosts_per_subscriber));
    }
    if (v.count("internal_pool")) {
        c.internal_pool = prefix<Ipv4Prefix>(v["internal_pool"], issues).value_or(c.internal_pool);
    }
    if (v.count("public_prefixes")) {
        for (auto& [p, _] : prefix_list<Ipv4Prefix>(v["public_prefixes"], issues)) {
            c.public_prefixes.push_back(p);
        }
    } else {
        issues.add(in.section,
                   "the section has no public_prefixes key; list the public IPv4 "
                   "prefixes the subscribers share, e.g. [203.0.113.0/24]");
    }
    if (v.count("ports")) {
        c.ports = port_range(v["ports"], issues).value_or(c.ports);
    }
    if (v.count("block_size")) {
        c.block_size =
            static_cast<uint32_t>(integer(v["block_size"], 1, 65536, issues).value_or(0));
    }
    if (v.count("mode")) {
        auto text = scalar(v["mode"], "deterministic or dynamic", issues);
        if (text == "dynamic") {
            c.mode = Nat64Mode::dynamic;
        } else if (text && *text != "deterministic") {
            issues.add(v["mode"],
                       "expected deterministic (RFC 7422, a fixed block per "
                       "subscriber) or dynamic (a block on first use), found " +
                           quote(*text));
        }
    }
    if (v.count("idle_timeout")) {
        c.idle_timeout_seconds = static_cast<uint32_t>(
            integer(v["idle_timeout"], 1, kMaxIdleTimeout, issues).value_or(0));
    }
    if (v.count("session_counters")) {
        auto text = scalar(v["session_counters"], "true or false", issues);
        if (text == "true" || text == "false") {
            c.session_counters = text == "true";
        } else if (text) {
            issues.add(v["session_counters"], "expected true or false, found " + quote(*text));
        }
    }
    if (v.count("table")) {
        auto text = scalar(v["table"], "an nftables table name, e.g. xlat64", issues);
        bool ok = text && !text->empty() && text->size() < 256 &&
                  std::all_of(text->begin(), text->end(), [](char ch) {
                      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
                  });
        if (text && !ok) {
            issues.add(v["table"], quote(*text) +
                                       " is not a table name (expected 1 to 255 "
                                       "letters, digits, '_' or '-')");
        }
        c.table = ok ? *text : c.table;
    }
}

void check_subscriber_length(const Located& in, IssueList& issues) {
    for (size_t i = 0; i < in.config.prefixes.size(); ++i) {
        const Ipv6Prefix& p = in.config.prefixes[i];
        if (p.len > in.config.subscriber_length) {
            issues.add(where(in, "subscriber_length"),
                       "/" + std::to_string(in.config.subscriber_length) +
                           " is shorter than prefixes[" + std::to_string(i) + "] " + to_string(p) +
                           "; a subscriber prefix must lie inside an admitted "
                           "prefix, so use /" +
                           std::to_string(p.len) + " or longer");
        }
    }
    uint64_t host_bits_max = 128 - in.config.subscriber_length;
    if (host_bits_max < 32 && in.config.hosts_per_subscriber > power_of_two(host_bits_max)) {
        issues.add(where(in, "hosts_per_subscriber"),
                   "a /" + std::to_string(in.config.subscriber_length) + " subscriber has " +
                       std::to_string(power_of_two(host_bits_max)) +
                       " IPv6 address(es); hosts_per_subscriber can be at most that");
    }
}

void check_internal_pool(const Located& in, IssueList& issues) {
    const Nat64Config& c = in.config;
    if (!std::has_single_bit(c.hosts_per_subscriber)) {
        issues.add(where(in, "hosts_per_subscriber"),
                   std::to_string(c.hosts_per_subscriber) +
                       " is not a power of two; each subscriber's internal addresses form one "
                       "prefix, so use 1, 2, 4, 8, ...");
    }
    if (!in_internal_range(c.internal_pool)) {
        issues.add(where(in, "internal_pool"),
                   to_string(c.internal_pool) +
                       " is not inside 100.64.0.0/10 (RFC 6598) or RFC 1918 space "
                       "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16); the internal pool "
                       "never leaves the router and must not hide a real destination");
    }
    for (const Ipv4Prefix& p : c.public_prefixes) {
        if (overlaps(p, c.internal_pool)) {
            issues.add(where(in, "public_prefixes"),
                       to_string(p) + " overlaps internal_pool " + to_string(c.internal_pool) +
                           "; public and internal addresses must differ");
        }
    }
}

void check_block_size(const Located& in, IssueList& issues) {
    const Nat64Config& c = in.config;
    // A power of two: a port's offset inside its block is its low bits, so the kernel's offset
    // mapping (public port = block start + internal port mod block size) keeps port parity and
    // the contiguity of port pairs (RFC 4787 sections 4.2.2 and 4.2.3, RTP/RTCP), and port -> block
    // is a shift.
    if (c.block_size < 2 || !std::has_single_bit(c.block_size) || c.block_size > c.ports.size()) {
        issues.add(where(in, "block_size"),
                   "expected a power of two from 2 to " +
                       std::to_string(std::bit_floor(c.ports.size())) + " (the size of ports " +
                       std::to_string(c.ports.first) + "-" + std::to_string(c.ports.last) +
                       "), found " + std::to_string(c.block_size));
    }
}

// idle_timeout applies in both modes: hosts give their internal address back after it in both,
// and in dynamic mode their subscriber's block goes back too.
void check_limits(const Located& in, IssueList& issues) {
    // The data path tries at most this many addresses for a new host (a bounded loop).
    if (in.config.hosts_per_subscriber > kMaxHostsPerSubscriber) {
        issues.add(where(in, "hosts_per_subscriber"),
                   std::to_string(in.config.hosts_per_subscriber) + " is more than " +
                       std::to_string(kMaxHostsPerSubscriber) +
                       ", the most a subscriber can use at once; use 256 or fewer");
    }
    if (in.config.prefixes.size() > kMaxNat64Prefixes) {
        issues.add(where(in, "prefixes"),
                   std::to_string(in.config.prefixes.size()) + " prefixes; at most " +
                       std::to_string(kMaxNat64Prefixes) + " are supported (aggregate them)");
    }
}

void check_capacity(const Located& in, IssueList& issues) {
    const Nat64Config& c = in.config;
    uint64_t subscribers = nat64_subscriber_count(c);
    uint64_t blocks = nat64_block_count(c);
    if (c.mode == Nat64Mode::deterministic && subscribers > blocks) {
        issues.add(where(in, "public_prefixes"),
                   count_text(subscribers) + " subscribers but " + std::to_string(blocks) +
                       " port blocks (" + std::to_string(nat64_public_address_count(c)) +
                       " public addresses x " + std::to_string(nat64_blocks_per_address(c)) +
                       " blocks of " + std::to_string(c.block_size) +
                       " ports): deterministic "
                       "mode needs a block per subscriber, and subscribers outnumber blocks by " +
                       (subscribers == kSaturated ? count_text(subscribers)
                                                  : std::to_string(subscribers - blocks)) +
                       "; add public addresses, use a smaller block_size or mode dynamic");
    }
    if (c.mode == Nat64Mode::dynamic && blocks > kMaxDynamicBlocks) {
        issues.add(where(in, "public_prefixes"),
                   std::to_string(blocks) + " port blocks; mode dynamic supports at most " +
                       std::to_string(kMaxDynamicBlocks) +
                       " (the data path's free-block queue); use a larger block_size");
    }
    // Internal block k belongs to port block k: one internal block per subscriber in
    // deterministic mode, one per port block in dynamic mode.
    const bool dynamic = c.mode == Nat64Mode::dynamic;
    uint64_t users = dynamic ? blocks : subscribers;
    uint64_t needed = saturating_mul(users, c.hosts_per_subscriber);
    uint64_t pool = power_of_two(32 - c.internal_pool.len);
    if (needed > pool) {
        issues.add(where(in, "internal_pool"),
                   to_string(c.internal_pool) + " has " + std::to_string(pool) + " addresses but " +
                       count_text(users) + (dynamic ? " port blocks" : " subscribers") + " x " +
                       std::to_string(c.hosts_per_subscriber) + " hosts_per_subscriber need " +
                       count_text(needed) + "; use a larger pool or fewer hosts_per_subscriber");
    }
}

}  // namespace

uint64_t nat64_subscriber_count(const Nat64Config& config) {
    uint64_t total = 0;
    for (const Ipv6Prefix& p : config.prefixes) {
        if (p.len <= config.subscriber_length) {
            total = saturating_add(total, power_of_two(config.subscriber_length - p.len));
        }
    }
    return total;
}

uint64_t nat64_public_address_count(const Nat64Config& config) {
    uint64_t total = 0;
    for (const Ipv4Prefix& p : config.public_prefixes) {
        total += uint64_t{1} << (32 - p.len);
    }
    return total;
}

uint32_t nat64_blocks_per_address(const Nat64Config& config) {
    return config.block_size == 0 ? 0 : config.ports.size() / config.block_size;
}

uint64_t nat64_block_count(const Nat64Config& config) {
    return nat64_public_address_count(config) * nat64_blocks_per_address(config);
}

std::optional<Nat64Config> read_nat64_config(const YAML::Node& node, const std::string& key,
                                             const YAML::Mark& mark,
                                             yaml_reader::IssueList& issues) {
    // ISSUES may already hold problems of other sections; only this section's count here.
    const size_t issues_before = issues.size();
    auto failed = [&] { return issues.size() > issues_before; };
    Located in{{}, {}, {key, node, mark}};
    in.values = read_section(in.section, issues);
    if (failed() && in.values.empty()) {
        return std::nullopt;
    }
    read_values(in, issues);
    if (failed()) {
        // Later checks would repeat earlier problems in other words.
        return std::nullopt;
    }
    check_subscriber_length(in, issues);
    check_internal_pool(in, issues);
    check_block_size(in, issues);
    check_limits(in, issues);
    if (!failed()) {
        check_capacity(in, issues);
    }
    return failed() ? std::nullopt : std::optional(in.config);
}

}  // namespace xlat64
