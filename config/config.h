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

struct Config {
    DeviceConfig device;
    std::optional<Ipv6Prefix> pool6;  // RFC 6052 prefix: /32, /40, /48, /56, /64 or /96
    std::vector<EamEntry> eamt;
    std::filesystem::path control_socket = "/run/xlat64/control.sock";
    std::filesystem::path bpf_pin_dir = "/sys/fs/bpf/xlat64";

    bool operator==(const Config&) const = default;
};

// One problem found in a configuration file; `message` says what would be valid.
struct ConfigIssue {
    std::string key;  // dotted path, e.g. "eamt[2].ipv6"
    int line = 0;     // 1-based; 0 when the problem is the file itself
    int column = 0;   // 1-based
    std::string message;
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
