// The typed, validated configuration of xlat64d, read from YAML (see config/examples/ and the
// README's configuration reference).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/ip_address.h"
#include "config/nat64_config.h"

namespace xlat64 {

// One Explicit Address Mapping (RFC 7757): an IPv4 prefix and an IPv6 prefix with the same number
// of suffix bits, so each address on one side maps to exactly one on the other.
struct EamEntry {
    Ipv4Prefix ipv4;
    Ipv6Prefix ipv6;
    auto operator<=>(const EamEntry&) const = default;
};

struct DeviceConfig {
    std::string name = "xlat64";
    // MTU of the device and of the IPv6 routes into it. IPv4 routes into the device get mtu - 20,
    // so an IPv4 packet that fits grows into an IPv6 packet that still fits (RFC 7915 section 4:
    // the IPv6 header is 20 bytes longer), and the kernel's own PMTUD does the rest.
    uint32_t mtu = 1500;

    bool operator==(const DeviceConfig&) const = default;
};

// RFC 7915 behaviour the operator chooses (the `translation:` section).
struct TranslationConfig {
    // RFC 7915 section 4 "lowest-ipv6-mtu": IPv4 packets without DF are fragmented (by the kernel,
    // before translation) so that their translation fits this; IPv4 routes into the device get
    // min(device.mtu, lowest_ipv6_mtu) - 28 (IPv6 header growth plus a Fragment header).
    uint32_t lowest_ipv6_mtu = 1280;
    // IPv4 UDP without checksum (RFC 7915 section 4.5): computed (false) or dropped (true).
    bool drop_udp_zero_checksum = false;
    // Traffic class / TOS of translated packets: copied (nullopt) or this value.
    std::optional<uint8_t> traffic_class;
    // RFC 6052 section 3.1: allow non-global IPv4 addresses with 64:ff9b::/96.
    bool allow_wkp_non_global = false;
    // The translator's own addresses: the source of ICMP errors the router itself originates
    // when their source cannot be translated.
    std::optional<Ipv4Address> ipv4_address;
    std::optional<Ipv6Address> ipv6_address;
    // RFC 6791 pools: sources for ICMP errors from routers whose address cannot be translated.
    std::optional<Ipv4Prefix> rfc6791_pool4;
    std::optional<Ipv6Prefix> rfc6791_pool6;

    bool operator==(const TranslationConfig&) const = default;
};

// Where and how long xlat64d keeps its state (the `state:` section).
struct StateConfig {
    // The SQLite store lives here (systemd's StateDirectory=xlat64).
    std::filesystem::path directory = "/var/lib/xlat64";
    // Allocation history older than this is pruned (closed allocations only). Abuse and
    // lawful-intercept requests arrive months later; a year is a common retention obligation.
    uint32_t retention_days = 365;
    // Besides the journal, allocation log lines are appended to this file when set.
    std::optional<std::filesystem::path> log_file;

    bool operator==(const StateConfig&) const = default;
};

struct Config {
    DeviceConfig device;
    std::optional<Ipv6Prefix> pool6;  // RFC 6052 prefix: /32, /40, /48, /56, /64 or /96
    // Every EAM entry: those of `eamt:` first, then those of `eamt_file:`, in file order.
    std::vector<EamEntry> eamt;
    // A plain-text EAMT (config/eamt_file.h) for tables too large for YAML.
    std::optional<std::filesystem::path> eamt_file;
    std::filesystem::path control_socket = "/run/xlat64/control.sock";
    std::filesystem::path bpf_pin_dir = "/sys/fs/bpf/xlat64";
    TranslationConfig translation;  // RFC 7915 options (`translation:`)
    // translation.ingress_interfaces: interfaces whose tc ingress gets the translator's fast path
    // (packets translated there skip the pass through the xlat64 device). Kept out of
    // TranslationConfig: that is what the program reads from its settings map, this is where
    // the program is attached. Names only: whether they exist is the kernel's business, seen at
    // each reconcile, not a configuration error.
    std::vector<std::string> ingress_interfaces;
    std::optional<Nat64Config> nat64;  // stateful NAT64 for subscribers (config/nat64_config.h)
    StateConfig state;

    bool operator==(const Config&) const = default;
};

// One problem found in a configuration file; `message` says what would be valid.
struct ConfigIssue {
    std::string key;  // dotted path, e.g. "eamt[2].ipv6"
    int line = 0;     // 1-based; 0 when the problem is the file itself
    int column = 0;   // 1-based
    std::string message;
    // Set when the problem is in another file the configuration names (eamt_file), whose name
    // then replaces the configuration's in the report.
    std::string file;
};

// Thrown for an invalid configuration; what() lists every issue as
// "FILE:LINE:COLUMN: KEY: MESSAGE", one per line.
class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string source, std::vector<ConfigIssue> issues);
    const std::vector<ConfigIssue>& issues() const { return issues_; }
    const std::string& source() const { return source_; }

  private:
    std::string source_;
    std::vector<ConfigIssue> issues_;
};

// Parses and validates; throws ConfigError listing every issue found (not just the first).
Config parse_config(std::string_view yaml_text, const std::string& source_name);
Config load_config_file(const std::filesystem::path& path);

}  // namespace xlat64

namespace xlat64 {

// Why ENTRY cannot join CONFIG's explicit address mappings at run time (xlat64ctl eamt add), or
// nullopt when it can: the same rules as for the file's `eamt` (equal suffix lengths, each prefix
// mapped once, no overlap with pool6) and with the nat64 section (admitted prefixes, internal
// pool).
std::optional<std::string> eam_conflict(const Config& config, const EamEntry& entry);

}  // namespace xlat64
