#include "config/config.h"

#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "config/eamt_file.h"
#include "config/yaml_reader.h"
#include "daemon/rfc6052.h"

namespace xlat64 {
namespace {

using yaml_reader::describe;
using yaml_reader::Field;
using yaml_reader::find;
using yaml_reader::Ipv4Family;
using yaml_reader::Ipv6Family;
using yaml_reader::IssueList;
using yaml_reader::kFileKey;
using yaml_reader::quote;
using yaml_reader::read_bool;
using yaml_reader::read_choice;
using yaml_reader::read_map;
using yaml_reader::read_prefix;
using yaml_reader::read_scalar;
using yaml_reader::read_uint;

constexpr uint32_t kMinMtu = 1280;  // the IPv6 minimum link MTU (RFC 8200 section 5)
constexpr uint32_t kMaxMtu = 65535;
constexpr size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
// A Unix socket path must fit sun_path with its terminating NUL.
constexpr size_t kMaxSocketPathLength = sizeof(sockaddr_un::sun_path) - 1;

// The rules the kernel applies to interface names (dev_valid_name()).
bool is_interface_name(const std::string& name) {
    if (name.empty() || name.size() > kMaxInterfaceNameLength || name == "." || name == "..") {
        return false;
    }
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || c == '\0' || c == ' ' || (c >= '\t' && c <= '\r');
    });
}

std::optional<std::string> read_interface_name(const Field& field, IssueList& issues,
                                               const char* example = "xlat64") {
    auto text = read_scalar(field, std::string("a Linux interface name, e.g. ") + example, issues);
    if (text && !is_interface_name(*text)) {
        issues.add(field, quote(*text) +
                              " is not a Linux interface name (expected 1 to 15 characters, "
                              "none of them '/', ':' or whitespace, and not '.' or '..')");
        return std::nullopt;
    }
    return text;
}

std::optional<std::filesystem::path> read_absolute_path(const Field& field, const char* example,
                                                        IssueList& issues) {
    auto text = read_scalar(field, std::string("an absolute path, e.g. ") + example, issues);
    if (!text) {
        return std::nullopt;
    }
    std::filesystem::path path(*text);
    if (!path.is_absolute()) {
        issues.add(field, quote(*text) + " is not an absolute path (expected one starting with " +
                              "'/', e.g. " + example + ")");
        return std::nullopt;
    }
    return path;
}

std::optional<std::filesystem::path> read_socket_path(const Field& field, IssueList& issues) {
    auto path = read_absolute_path(field, "/run/xlat64/control.sock", issues);
    if (path && path->native().size() > kMaxSocketPathLength) {
        issues.add(field, "the path is " + std::to_string(path->native().size()) +
                              " bytes long; a Unix socket path can have at most " +
                              std::to_string(kMaxSocketPathLength));
        return std::nullopt;
    }
    return path;
}

std::optional<Ipv6Prefix> read_pool6(const Field& field, IssueList& issues) {
    auto prefix = read_prefix<Ipv6Family>(field, issues);
    if (!prefix) {
        return std::nullopt;
    }
    if (!rfc6052_prefix_length_allowed(prefix->len)) {
        issues.add(field, "prefix length /" + std::to_string(prefix->len) +
                              " is not allowed by RFC 6052 section 2.2; use /32, /40, /48, /56, "
                              "/64 or /96");
        return std::nullopt;
    }
    // Shorter prefixes end before bits 64..71; a /96 includes them, and RFC 6052 section 2.2
    // requires them to be zero.
    constexpr size_t kUOctet = 8;
    if (prefix->len == 96 && prefix->addr[kUOctet] != 0) {
        Ipv6Address fixed = prefix->addr;
        fixed[kUOctet] = 0;
        issues.add(field, "bits 64 to 71 of " + to_string(*prefix) +
                              " (the u octet) must be zero by RFC 6052 section 2.2, e.g. " +
                              to_string(Ipv6Prefix{fixed, 96}));
        return std::nullopt;
    }
    return prefix;
}

void read_device(const Field& field, DeviceConfig& device, IssueList& issues) {
    auto values = read_map(field, {"name", "mtu"}, issues);
    if (const Field* name = find(values, "name")) {
        device.name = read_interface_name(*name, issues).value_or(device.name);
    }
    if (const Field* mtu = find(values, "mtu")) {
        device.mtu =
            static_cast<uint32_t>(read_uint(*mtu, kMinMtu, kMaxMtu, issues).value_or(device.mtu));
    }
}

// A prefix of an EAMT entry together with where it was written.
template <typename Prefix>
struct Located {
    Prefix prefix;
    Field field;
};

// One entry as read; a side is empty when it was missing or invalid (already reported).
struct EamCandidate {
    std::optional<Located<Ipv4Prefix>> ipv4;
    std::optional<Located<Ipv6Prefix>> ipv6;
};

template <typename Family>
std::optional<Located<typename Family::Prefix>> read_eam_side(
    const Field& entry, const std::map<std::string, Field>& values, const char* name,
    IssueList& issues) {
    const Field* field = find(values, name);
    if (!field) {
        issues.add(entry, std::string("the entry has no ") + name +
                              " key; each entry maps an ipv4 prefix to an ipv6 prefix");
        return std::nullopt;
    }
    auto prefix = read_prefix<Family>(*field, issues);
    if (!prefix) {
        return std::nullopt;
    }
    return Located<typename Family::Prefix>{*prefix, *field};
}

EamCandidate read_eam_entry(const Field& entry, IssueList& issues) {
    if (!entry.node.IsMap()) {
        issues.add(entry, "expected a map with keys ipv4 and ipv6, found " + describe(entry.node));
        return {};
    }
    auto values = read_map(entry, {"ipv4", "ipv6"}, issues);
    return {read_eam_side<Ipv4Family>(entry, values, "ipv4", issues),
            read_eam_side<Ipv6Family>(entry, values, "ipv6", issues)};
}

std::vector<EamCandidate> read_eamt_entries(const Field& field, IssueList& issues) {
    std::vector<EamCandidate> entries;
    if (field.node.IsNull()) {
        return entries;  // `eamt:` with every entry commented out
    }
    if (!field.node.IsSequence()) {
        issues.add(field, "expected a list of {ipv4, ipv6} entries, found " +
                              (field.node.IsScalar() ? "a scalar" : describe(field.node)));
        return entries;
    }
    for (size_t i = 0; i < field.node.size(); ++i) {
        YAML::Node node = field.node[i];
        Field entry{field.key + "[" + std::to_string(i) + "]", node, node.Mark()};
        entries.push_back(read_eam_entry(entry, issues));
    }
    return entries;
}

// Every EAM entry of `eamt:` and `eamt_file:` with where it was written, for the checks that
// compare entries with each other and with the rest of the configuration. A million entries are
// checked by sorting, never pairwise.
class EamtChecker {
  public:
    EamtChecker(std::vector<EamCandidate> yaml, std::vector<EamtFileEntry> file,
                std::optional<std::filesystem::path> file_path, IssueList& issues)
        : yaml_(std::move(yaml)),
          file_(std::move(file)),
          file_path_(file_path ? file_path->string() : std::string()),
          issues_(issues) {}

    // The entries valid on their own, YAML ones first; problems are reported at the entry.
    std::vector<EamEntry> check(const std::optional<Ipv6Prefix>& pool6) {
        check_yaml_suffixes();
        check_unique(&EamEntry::ipv4, [](const EamCandidate& c) { return ipv4_of(c); });
        check_unique(&EamEntry::ipv6, [](const EamCandidate& c) { return ipv6_of(c); });
        if (pool6) {
            check_pool6_overlap(*pool6);
        }
        std::vector<EamEntry> eamt;
        eamt.reserve(yaml_.size() + file_.size());
        for (const EamCandidate& c : yaml_) {
            if (c.ipv4 && c.ipv6) {
                eamt.push_back({c.ipv4->prefix, c.ipv6->prefix});
            }
        }
        for (const EamtFileEntry& e : file_) {
            eamt.push_back(e.entry);
        }
        return eamt;
    }

  private:
    static std::optional<Ipv4Prefix> ipv4_of(const EamCandidate& c) {
        return c.ipv4 ? std::optional(c.ipv4->prefix) : std::nullopt;
    }
    static std::optional<Ipv6Prefix> ipv6_of(const EamCandidate& c) {
        return c.ipv6 ? std::optional(c.ipv6->prefix) : std::nullopt;
    }

    void check_yaml_suffixes() {
        for (const EamCandidate& c : yaml_) {
            if (c.ipv4 && c.ipv6) {
                if (auto problem = eam_suffix_problem(c.ipv4->prefix, c.ipv6->prefix)) {
                    issues_.add(c.ipv6->field, *problem);
                }
            }
        }
    }

    // Entry I (YAML entries first, then the file's), as the message about a duplicate on one
    // side names it.
    std::string where(size_t i, bool ipv6_side) const {
        if (i < yaml_.size()) {
            const Field& field = ipv6_side ? yaml_[i].ipv6->field : yaml_[i].ipv4->field;
            return "eamt[" + std::to_string(i) + "] (line " + std::to_string(field.mark.line + 1) +
                   ")";
        }
        return "line " + std::to_string(file_[i - yaml_.size()].line) + " of " + file_path_;
    }

    // Reports MESSAGE at entry I's side (IPV6_SIDE: its ipv6 key) where it was written.
    void report(size_t i, bool ipv6_side, const std::string& message) {
        if (i < yaml_.size()) {
            issues_.add(ipv6_side ? yaml_[i].ipv6->field : yaml_[i].ipv4->field, message);
        } else {
            issues_.add_in_file(file_path_, "eamt_file",
                                static_cast<int>(file_[i - yaml_.size()].line), message);
        }
    }

    // Two entries with the same prefix on one side would make that side's lookup ambiguous.
    // Nested prefixes of different lengths are fine: the longest match wins (RFC 7757 section
    // 3.2).
    template <typename Prefix, typename FromYaml>
    void check_unique(Prefix EamEntry::*side, FromYaml from_yaml) {
        std::vector<std::pair<Prefix, size_t>> seen;
        seen.reserve(yaml_.size() + file_.size());
        for (size_t i = 0; i < yaml_.size(); ++i) {
            if (auto prefix = from_yaml(yaml_[i])) {
                seen.emplace_back(*prefix, i);
            }
        }
        for (size_t i = 0; i < file_.size(); ++i) {
            seen.emplace_back(file_[i].entry.*side, yaml_.size() + i);
        }
        std::sort(seen.begin(), seen.end());  // equal prefixes in entry order
        for (size_t i = 1, first = 0; i < seen.size(); ++i) {
            if (seen[i].first != seen[first].first) {
                first = i;
                continue;
            }
            constexpr bool ipv6_side = std::is_same_v<Prefix, Ipv6Prefix>;
            report(seen[i].second, ipv6_side,
                   to_string(seen[i].first) + " is already mapped by " +
                       where(seen[first].second, ipv6_side));
        }
    }

    void check_pool6_overlap(const Ipv6Prefix& pool6) {
        auto message = [&](const Ipv6Prefix& p) {
            return to_string(p) + " overlaps pool6 " + to_string(pool6) +
                   "; pool6 addresses must keep meaning IPv4 addresses";
        };
        for (size_t i = 0; i < yaml_.size(); ++i) {
            if (yaml_[i].ipv6 && overlaps(pool6, yaml_[i].ipv6->prefix)) {
                report(i, true, message(yaml_[i].ipv6->prefix));
            }
        }
        for (size_t i = 0; i < file_.size(); ++i) {
            if (overlaps(pool6, file_[i].entry.ipv6)) {
                report(yaml_.size() + i, true, message(file_[i].entry.ipv6));
            }
        }
    }

    std::vector<EamCandidate> yaml_;
    std::vector<EamtFileEntry> file_;
    std::string file_path_;
    IssueList& issues_;
};

// An address of either family; `what` names it with an example, e.g. "an IPv4 address, e.g. ...".
template <typename Family>
auto read_address(const Field& field, const std::string& what, IssueList& issues)
    -> decltype(Family::parse_address("")) {
    auto text = read_scalar(field, what, issues);
    if (!text) {
        return std::nullopt;
    }
    auto addr = Family::parse_address(*text);
    if (!addr) {
        issues.add(field, quote(*text) + " is not " + what);
    }
    return addr;
}

// translation.ingress_interfaces: a list of interface names, each once, never xlat64's own
// device (DEVICE_NAME), whose packets the device path translates already.
std::vector<std::string> read_ingress_interfaces(const Field& field, const std::string& device_name,
                                                 IssueList& issues) {
    std::vector<std::string> names;
    if (field.node.IsNull()) {
        return names;  // `ingress_interfaces:` with every entry commented out
    }
    if (!field.node.IsSequence()) {
        issues.add(field, "expected a list of interface names, e.g. [eth1, eth2], found " +
                              describe(field.node));
        return names;
    }
    // Where each name was first listed: "translation.ingress_interfaces[0] (line 3)".
    std::map<std::string, std::string> first;
    for (size_t i = 0; i < field.node.size(); ++i) {
        YAML::Node node = field.node[i];
        Field entry{field.key + "[" + std::to_string(i) + "]", node, node.Mark()};
        auto name = read_interface_name(entry, issues, "eth1");
        if (!name) {
            continue;
        }
        const std::string where = entry.key + " (line " + std::to_string(entry.mark.line + 1) + ")";
        if (*name == device_name) {
            issues.add(entry, *name +
                                  " is xlat64's own device (device.name); list the interfaces "
                                  "the translated traffic arrives on, e.g. eth1");
        } else if (auto [it, added] = first.emplace(*name, where); !added) {
            issues.add(entry, *name + " is already listed as " + it->second +
                                  "; list each interface once");
        } else {
            names.push_back(*name);
        }
    }
    return names;
}

// `translation:` (RFC 7915 behaviour, and where the fast path is attached). Each key is
// optional; see TranslationConfig and Config::ingress_interfaces.
void read_translation(const Field& field, Config& config, IssueList& issues) {
    TranslationConfig& t = config.translation;
    auto values = read_map(
        field,
        {"lowest_ipv6_mtu", "udp_zero_checksum", "traffic_class", "allow_wkp_non_global",
         "ipv4_address", "ipv6_address", "rfc6791_pool4", "rfc6791_pool6", "ingress_interfaces"},
        issues);
    if (const Field* f = find(values, "ingress_interfaces")) {
        config.ingress_interfaces = read_ingress_interfaces(*f, config.device.name, issues);
    }
    if (const Field* f = find(values, "lowest_ipv6_mtu")) {
        t.lowest_ipv6_mtu = static_cast<uint32_t>(
            read_uint(*f, kMinMtu, kMaxMtu, issues).value_or(t.lowest_ipv6_mtu));
    }
    if (const Field* f = find(values, "udp_zero_checksum")) {
        if (auto choice = read_choice(*f, {"compute", "drop"}, issues)) {
            t.drop_udp_zero_checksum = *choice == 1;
        }
    }
    if (const Field* f = find(values, "traffic_class")) {
        // "copy" or a number; both are reported together when it is neither.
        if (f->node.IsScalar() && f->node.Scalar() == "copy") {
            t.traffic_class.reset();
        } else {
            IssueList scratch;
            auto value = read_uint(*f, 0, 255, scratch);
            if (value) {
                t.traffic_class = static_cast<uint8_t>(*value);
            } else {
                issues.add(*f,
                           "expected copy or an integer from 0 to 255, found " + describe(f->node));
            }
        }
    }
    if (const Field* f = find(values, "allow_wkp_non_global")) {
        t.allow_wkp_non_global = read_bool(*f, issues).value_or(t.allow_wkp_non_global);
    }
    if (const Field* f = find(values, "ipv4_address")) {
        t.ipv4_address = read_address<Ipv4Family>(*f, "an IPv4 address, e.g. 192.0.2.1", issues);
    }
    if (const Field* f = find(values, "ipv6_address")) {
        t.ipv6_address = read_address<Ipv6Family>(*f, "an IPv6 address, e.g. 2001:db8::1", issues);
    }
    if (const Field* f = find(values, "rfc6791_pool4")) {
        t.rfc6791_pool4 = read_prefix<Ipv4Family>(*f, issues);
    }
    if (const Field* f = find(values, "rfc6791_pool6")) {
        t.rfc6791_pool6 = read_prefix<Ipv6Family>(*f, issues);
    }
}

// `state:`: where the store lives, how long history is kept, an optional allocation log file.
void read_state(const Field& field, StateConfig& state, IssueList& issues) {
    auto values = read_map(field, {"directory", "retention_days", "log_file"}, issues);
    if (const Field* f = find(values, "directory")) {
        state.directory =
            read_absolute_path(*f, "/var/lib/xlat64", issues).value_or(state.directory);
    }
    if (const Field* f = find(values, "retention_days")) {
        state.retention_days =
            static_cast<uint32_t>(read_uint(*f, 1, 36500, issues).value_or(state.retention_days));
    }
    if (const Field* f = find(values, "log_file")) {
        state.log_file = read_absolute_path(*f, "/var/log/xlat64/allocations.log", issues);
    }
}

// The entries of an EAMT whose prefix on one side overlaps a given prefix, found by binary search
// (a NAT64 section is checked against a million-entry EAMT in milliseconds).
template <typename Prefix>
class EamSideIndex {
  public:
    EamSideIndex(const std::vector<EamEntry>& eamt, Prefix EamEntry::*side) : eamt_(eamt) {
        sorted_.reserve(eamt.size());
        for (size_t i = 0; i < eamt.size(); ++i) {
            sorted_.emplace_back(eamt[i].*side, i);
        }
        std::sort(sorted_.begin(), sorted_.end());
    }

    // The entries overlapping P: those containing it, then those inside it.
    std::vector<const EamEntry*> overlapping(const Prefix& p) const {
        std::vector<const EamEntry*> out;
        for (unsigned len = 0; len < p.len; ++len) {
            const Prefix outer{mask_address(p.addr, len), static_cast<uint8_t>(len)};
            auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::pair(outer, size_t{0}));
            if (it != sorted_.end() && it->first == outer) {
                out.push_back(&eamt_[it->second]);
            }
        }
        // Sorted by address then length, the prefixes inside P follow P's address at lengths of
        // at least P's.
        auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::pair(p, size_t{0}));
        for (; it != sorted_.end() && contains(p, it->first.addr); ++it) {
            out.push_back(&eamt_[it->second]);
        }
        return out;
    }

  private:
    const std::vector<EamEntry>& eamt_;
    std::vector<std::pair<Prefix, size_t>> sorted_;
};

// "the EAM entry A <-> B" and how many more there are, for an overlap with ENTRIES (not empty).
std::string name_eam_entries(const std::vector<const EamEntry*>& entries) {
    std::string text = "the EAM entry " + to_string(entries.front()->ipv4) + " <-> " +
                       to_string(entries.front()->ipv6);
    if (entries.size() > 1) {
        text += " (and " + std::to_string(entries.size() - 1) + " more)";
    }
    return text;
}

// The data path looks a source up in the EAMT, then pool6, then the NAT64 hosts: an address
// claimed by two of them would silently belong to the first. The internal pool is routed into the
// device and must not hide an EAM IPv4 prefix either.
void check_nat64_against_siit(const Config& config, const Field& nat64, IssueList& issues) {
    const Nat64Config& n = *config.nat64;
    const EamSideIndex<Ipv6Prefix> eam_ipv6(config.eamt, &EamEntry::ipv6);
    for (size_t i = 0; i < n.prefixes.size(); ++i) {
        const std::string key = nat64.key + ".prefixes[" + std::to_string(i) + "]";
        const Ipv6Prefix& p = n.prefixes[i];
        if (config.pool6 && overlaps(*config.pool6, p)) {
            issues.add(key, nat64.mark,
                       to_string(p) + " overlaps pool6 " + to_string(*config.pool6) +
                           "; subscribers' addresses and IPv4-embedded addresses must differ");
        }
        if (auto hit = eam_ipv6.overlapping(p); !hit.empty()) {
            issues.add(key, nat64.mark,
                       to_string(p) + " overlaps " + name_eam_entries(hit) +
                           "; a host is either an EAM host or a NAT64 subscriber");
        }
    }
    const EamSideIndex<Ipv4Prefix> eam_ipv4(config.eamt, &EamEntry::ipv4);
    if (auto hit = eam_ipv4.overlapping(n.internal_pool); !hit.empty()) {
        issues.add(nat64.key + ".internal_pool", nat64.mark,
                   to_string(n.internal_pool) + " overlaps " + name_eam_entries(hit) +
                       "; the internal pool must be used by nothing else");
    }
}

Config read_config(const YAML::Node& root, IssueList& issues) {
    Config config;
    Field top{"", root, root.Mark()};
    if (!root.IsMap()) {
        top.key = kFileKey;
    }
    auto values = read_map(
        top,
        {"device", "pool6", "eamt", "eamt_file", "control", "bpf", "nat64", "translation", "state"},
        issues);
    if (const Field* device = find(values, "device")) {
        read_device(*device, config.device, issues);
    }
    if (const Field* pool6 = find(values, "pool6")) {
        config.pool6 = read_pool6(*pool6, issues);
    }
    std::vector<EamCandidate> yaml_eamt;
    if (const Field* eamt = find(values, "eamt")) {
        yaml_eamt = read_eamt_entries(*eamt, issues);
    }
    std::vector<EamtFileEntry> file_eamt;
    if (const Field* file = find(values, "eamt_file")) {
        config.eamt_file = read_absolute_path(*file, "/etc/xlat64/eamt.txt", issues);
        if (config.eamt_file) {
            file_eamt = read_eamt_file(*config.eamt_file, issues);
        }
    }
    config.eamt = EamtChecker(std::move(yaml_eamt), std::move(file_eamt), config.eamt_file, issues)
                      .check(config.pool6);
    if (const Field* control = find(values, "control")) {
        auto control_values = read_map(*control, {"socket"}, issues);
        if (const Field* socket = find(control_values, "socket")) {
            config.control_socket =
                read_socket_path(*socket, issues).value_or(config.control_socket);
        }
    }
    if (const Field* bpf = find(values, "bpf")) {
        auto bpf_values = read_map(*bpf, {"pin_dir"}, issues);
        if (const Field* pin_dir = find(bpf_values, "pin_dir")) {
            config.bpf_pin_dir = read_absolute_path(*pin_dir, "/sys/fs/bpf/xlat64", issues)
                                     .value_or(config.bpf_pin_dir);
        }
    }
    if (const Field* translation = find(values, "translation")) {
        read_translation(*translation, config, issues);
    }
    if (const Field* state = find(values, "state")) {
        read_state(*state, config.state, issues);
    }
    if (const Field* nat64 = find(values, "nat64")) {
        config.nat64 = read_nat64_config(nat64->node, nat64->key, nat64->mark, issues);
        if (config.nat64) {
            check_nat64_against_siit(config, *nat64, issues);
        }
    }
    return config;
}

std::string format_issues(const std::string& source, const std::vector<ConfigIssue>& issues) {
    std::string out;
    for (const ConfigIssue& issue : issues) {
        out += out.empty() ? "" : "\n";
        out += (issue.file.empty() ? source : issue.file) + ":";
        if (issue.line > 0) {
            out += std::to_string(issue.line) + ":";
            // The lines of eamt_file have no columns worth naming.
            out += issue.column > 0 ? std::to_string(issue.column) + ":" : "";
        }
        out += " " + issue.key + ": " + issue.message;
    }
    return out;
}

}  // namespace

ConfigError::ConfigError(std::string source, std::vector<ConfigIssue> issues)
    : std::runtime_error(format_issues(source, issues)),
      source_(std::move(source)),
      issues_(std::move(issues)) {}

Config parse_config(std::string_view yaml_text, const std::string& source_name) {
    IssueList issues;
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(std::string(yaml_text));
    } catch (const YAML::Exception& e) {
        issues.add(kFileKey, e.mark, "YAML syntax error: " + e.msg);
        throw ConfigError(source_name, issues.take_sorted());
    }
    // No document at all (empty, or only comments) is the all-defaults configuration.
    Config config = documents.empty() ? Config{} : read_config(documents.front(), issues);
    if (documents.size() > 1) {
        issues.add(kFileKey, documents[1].Mark(),
                   "a second YAML document starts here; the file must hold exactly one");
    }
    if (!issues.empty()) {
        throw ConfigError(source_name, issues.take_sorted());
    }
    return config;
}

Config load_config_file(const std::filesystem::path& path) {
    std::string source = path.string();
    auto fail = [&](int error) {
        throw ConfigError(
            source, {{kFileKey, 0, 0, "cannot read " + source + ": " + std::strerror(error)}});
    };
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(source.c_str(), "rb"),
                                                         &std::fclose);
    if (!file) {
        fail(errno);
    }
    std::string text;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
        text.append(buffer, n);
    }
    // fread on a directory fails with EISDIR, which fopen does not catch.
    if (std::ferror(file.get())) {
        fail(errno);
    }
    return parse_config(text, source);
}

}  // namespace xlat64

namespace xlat64 {

std::optional<std::string> eam_conflict(const Config& config, const EamEntry& entry) {
    const std::string name = to_string(entry.ipv4) + " <-> " + to_string(entry.ipv6);
    if (32U - entry.ipv4.len != 128U - entry.ipv6.len) {
        return name +
               ": the two prefixes must leave the same number of host bits (e.g. /24 and "
               "/120)";
    }
    if (mask_address(entry.ipv4.addr, entry.ipv4.len) != entry.ipv4.addr ||
        mask_address(entry.ipv6.addr, entry.ipv6.len) != entry.ipv6.addr) {
        return name + ": host bits must be zero";
    }
    for (const EamEntry& e : config.eamt) {
        if (e.ipv4 == entry.ipv4 || e.ipv6 == entry.ipv6) {
            return name + ": " + (e.ipv4 == entry.ipv4 ? to_string(e.ipv4) : to_string(e.ipv6)) +
                   " is already mapped (" + to_string(e.ipv4) + " <-> " + to_string(e.ipv6) + ")";
        }
    }
    if (config.pool6 && overlaps(*config.pool6, entry.ipv6)) {
        return name + ": " + to_string(entry.ipv6) + " overlaps pool6 " + to_string(*config.pool6);
    }
    if (config.nat64) {
        for (const Ipv6Prefix& p : config.nat64->prefixes) {
            if (overlaps(p, entry.ipv6)) {
                return name + ": " + to_string(entry.ipv6) + " overlaps the NAT64 prefix " +
                       to_string(p);
            }
        }
        if (overlaps(config.nat64->internal_pool, entry.ipv4)) {
            return name + ": " + to_string(entry.ipv4) + " overlaps the NAT64 internal pool " +
                   to_string(config.nat64->internal_pool);
        }
    }
    return std::nullopt;
}

}  // namespace xlat64
