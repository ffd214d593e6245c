// The `nat64:` section: stateful NAT64 for subscribers, built as stateless translation into an
// internal IPv4 pool plus kernel NAT44 (DESIGN.md, "Stateful NAT64 = stateless translation +
// kernel NAT44"). Each subscriber (an IPv6 prefix of subscriber_length inside one of the admitted
// prefixes) gets an internal block of hosts_per_subscriber addresses and one public IPv4 address
// with a block of block_size ports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/ip_address.h"

namespace YAML {
class Node;
struct Mark;
}  // namespace YAML

namespace xlat64 {

namespace yaml_reader {
class IssueList;
}  // namespace yaml_reader

enum class Nat64Mode {
    // RFC 7422: a subscriber's block is a fixed function of its prefix and the configuration, so
    // tracing needs the configuration only, and nothing is logged per allocation.
    deterministic,
    // A block is handed out on a subscriber's first packet and returned after idle_timeout.
    dynamic,
};

struct PortRange {
    uint16_t first = 1024;
    uint16_t last = 65535;
    uint32_t size() const { return uint32_t{last} - first + 1; }
    bool operator==(const PortRange&) const = default;
};

struct Nat64Config {
    // IPv6 prefixes whose hosts may use NAT64; each is cut into subscriber prefixes.
    std::vector<Ipv6Prefix> prefixes;
    // /56 per PPPoE customer with DHCPv6-PD, /64 per mobile, /128 per 464XLAT CLAT address.
    uint8_t subscriber_length = 56;
    // Internal IPv4 addresses per subscriber (a power of two, so the block is one prefix): the
    // translator maps each IPv6 host of the subscriber to one of them.
    uint32_t hosts_per_subscriber = 1;
    // Never seen outside the router: the NAT44 rewrites it to the public addresses.
    Ipv4Prefix internal_pool{{100, 64, 0, 0}, 10};
    std::vector<Ipv4Prefix> public_prefixes;
    PortRange ports;
    // Ports per block: a power of two from 2 to the size of `ports` (see check_block_size in
    // nat64_config.cpp for why). Each public address has floor(ports / block_size) blocks starting
    // at ports.first; ports above the last whole block stay unused (1024-65535 with 2048: 31
    // blocks, 64512-65535 unused).
    uint32_t block_size = 2048;
    Nat64Mode mode = Nat64Mode::deterministic;
    // A host unused for this long, with no flow left in conntrack, gives its internal address
    // back; in dynamic mode its subscriber's block goes back to the pool the same way.
    uint32_t idle_timeout_seconds = 300;
    // A counter of the connections each block created (`sessions_created` in xlat64ctl
    // subscriber show): a per-CPU counter per block in the kernel, 16 bytes per block per CPU,
    // and half the time of filling the blocks map at a reboot. Worth turning off beyond about
    // 100,000 subscribers.
    bool session_counters = true;
    // xlat64's own nftables table (family ip).
    std::string table = "xlat64";

    bool operator==(const Nat64Config&) const = default;
};

// Limits of the data path's maps (kmod-shim/xlat64_abi.h: XLAT64_N64_PREFIXES_MAX and
// XLAT64_N64_BLOCKS_MAX).
inline constexpr size_t kMaxNat64Prefixes = 1024;
inline constexpr uint64_t kMaxDynamicBlocks = uint64_t{1} << 20;
// A new host is given the first free address of its subscriber's block among this many tried.
inline constexpr uint32_t kMaxHostsPerSubscriber = 256;

// Capacity, saturating at UINT64_MAX (a /32 cut into /128s has 2^96 subscribers).
uint64_t nat64_subscriber_count(const Nat64Config& config);
uint64_t nat64_public_address_count(const Nat64Config& config);
uint32_t nat64_blocks_per_address(const Nat64Config& config);
uint64_t nat64_block_count(const Nat64Config& config);

// Reads and validates the `nat64:` section (NODE, at KEY/MARK). Returns nullopt when the section
// is unusable; every problem goes to ISSUES (config/yaml_reader.h), the list the rest of the file
// reports to, so the section's problems sort in among the others.
std::optional<Nat64Config> read_nat64_config(const YAML::Node& node, const std::string& key,
                                             const YAML::Mark& mark,
                                             yaml_reader::IssueList& issues);

}  // namespace xlat64
