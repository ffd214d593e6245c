#include "config/config.h"

#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>

#include "daemon/rfc6052.h"

namespace xlat64 {
namespace {

// The pseudo-key of problems with the file as a whole (unreadable, not YAML, not a map).
constexpr const char* kFileKey = "(file)";

constexpr uint32_t kMinMtu = 1280;  // the IPv6 minimum link MTU (RFC 8200 section 5)
constexpr uint32_t kMaxMtu = 65535;
constexpr size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
// A Unix socket path must fit sun_path with its terminating NUL.
constexpr size_t kMaxSocketPathLength = sizeof(sockaddr_un::sun_path) - 1;

// A value in the document, with what it takes to report a problem with it.
struct Field {
    std::string key;  // dotted path, e.g. "eamt[1].ipv6"
    YAML::Node node;
    // Where a problem is reported: the value itself, or its key when the value is empty (yaml-cpp
    // marks an empty value at whatever token follows it, often on the next line).
    YAML::Mark mark;
};

class IssueList {
  public:
    void add(const std::string& key, const YAML::Mark& mark, std::string message) {
        // yaml-cpp counts from 0 and uses -1 for "no position".
        int line = mark.line >= 0 ? mark.line + 1 : 0;
        int column = line > 0 && mark.column >= 0 ? mark.column + 1 : 0;
        issues_.push_back({key, line, column, std::move(message)});
    }
    void add(const Field& field, std::string message) {
        add(field.key, field.mark, std::move(message));
    }
    bool empty() const { return issues_.empty(); }

    // In file order, so the report reads top to bottom whatever order the checks ran in.
    std::vector<ConfigIssue> take_sorted() {
        std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
            return std::pair(a.line, a.column) < std::pair(b.line, b.column);
        });
        return std::move(issues_);
    }

  private:
    std::vector<ConfigIssue> issues_;
};

std::string child_key(const std::string& parent, const std::string& name) {
    return parent.empty() ? name : parent + "." + name;
}

std::string join(std::initializer_list<const char*> names) {
    std::string out;
    for (const char* name : names) {
        out += out.empty() ? "" : ", ";
        out += name;
    }
    return out;
}

// TEXT in single quotes, control characters escaped: a value quoted in YAML may hold a newline,
// which must not break the one-line-per-issue report.
std::string quote(const std::string& text) {
    std::string out = "'";
    for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7f) {
            char escaped[5];
            std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
            out += escaped;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "'";
}

// What was found, for messages of the form "expected X, found Y".
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return quote(node.Scalar());
        default:
            return "nothing";
    }
}

Field value_field(std::string key, const YAML::Node& key_node, const YAML::Node& value) {
    const YAML::Mark& mark = value.IsNull() ? key_node.Mark() : value.Mark();
    return {std::move(key), value, mark};
}

// The values of a map by key name (first occurrence). Reports keys that are not names, unknown
// keys and duplicate keys; yaml-cpp would otherwise let one duplicate win silently. An empty
// value (`device:`) counts as an empty map, so every key inside takes its default.
std::map<std::string, Field> read_map(const Field& map, std::initializer_list<const char*> valid,
                                      IssueList& issues) {
    std::map<std::string, Field> values;
    std::map<std::string, int> key_lines;  // 1-based, for naming the first of a duplicate
    if (map.node.IsNull()) {
        return values;
    }
    if (!map.node.IsMap()) {
        issues.add(map,
                   "expected a map with keys " + join(valid) + ", found " + describe(map.node));
        return values;
    }
    for (const auto& pair : map.node) {
        const YAML::Node& key = pair.first;
        if (!key.IsScalar()) {
            issues.add(map.key.empty() ? kFileKey : map.key, key.Mark(),
                       "expected a key name, found " + describe(key));
            continue;
        }
        std::string name = key.Scalar();
        std::string path = child_key(map.key, name);
        if (std::none_of(valid.begin(), valid.end(), [&](const char* v) { return name == v; })) {
            issues.add(path, key.Mark(),
                       "unknown key '" + name + "'; valid keys here: " + join(valid));
            continue;
        }
        auto [it, inserted] = key_lines.try_emplace(name, key.Mark().line + 1);
        if (inserted) {
            values.emplace(name, value_field(path, key, pair.second));
        } else {
            issues.add(path, key.Mark(),
                       "duplicate key '" + name + "' (first on line " + std::to_string(it->second) +
                           "); YAML keeps only one of them, so give it once");
        }
    }
    return values;
}

const Field* find(const std::map<std::string, Field>& values, const std::string& name) {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second;
}

std::optional<std::string> read_scalar(const Field& field, const std::string& expected,
                                       IssueList& issues) {
    if (!field.node.IsScalar()) {
        issues.add(field, "expected " + expected + ", found " + describe(field.node));
        return std::nullopt;
    }
    return field.node.Scalar();
}

std::optional<uint32_t> read_mtu(const Field& field, IssueList& issues) {
    std::string expected =
        "an integer from " + std::to_string(kMinMtu) + " to " + std::to_string(kMaxMtu);
    auto text = read_scalar(field, expected, issues);
    if (!text) {
        return std::nullopt;
    }
    // Decimal digits only: from_chars takes no sign, no hex, no fraction.
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc{} || end != text->data() + text->size() || value < kMinMtu ||
        value > kMaxMtu) {
        issues.add(field, "expected " + expected + ", found " + describe(field.node));
        return std::nullopt;
    }
    return static_cast<uint32_t>(value);
}

// The rules the kernel applies to interface names (dev_valid_name()).
bool is_interface_name(const std::string& name) {
    if (name.empty() || name.size() > kMaxInterfaceNameLength || name == "." || name == "..") {
        return false;
    }
    return std::none_of(name.begin(), name.end(), [](char c) {
        return c == '/' || c == ':' || c == '\0' || c == ' ' || (c >= '\t' && c <= '\r');
    });
}

std::optional<std::string> read_interface_name(const Field& field, IssueList& issues) {
    auto text = read_scalar(field, "a Linux interface name, e.g. xlat64", issues);
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

// What read_prefix needs to know about each address family.
struct Ipv4Family {
    using Prefix = Ipv4Prefix;
    static constexpr unsigned kBits = 32;
    static constexpr const char* kWhat = "an IPv4 prefix";
    static constexpr const char* kExample = "198.51.100.0/24";
    static auto parse_address(std::string_view text) { return parse_ipv4_address(text); }
    static auto parse_prefix(std::string_view text) { return parse_ipv4_prefix(text); }
};

struct Ipv6Family {
    using Prefix = Ipv6Prefix;
    static constexpr unsigned kBits = 128;
    static constexpr const char* kWhat = "an IPv6 prefix";
    static constexpr const char* kExample = "2001:db8:64::/96";
    static auto parse_address(std::string_view text) { return parse_ipv6_address(text); }
    static auto parse_prefix(std::string_view text) { return parse_ipv6_prefix(text); }
};

// TEXT read as ADDRESS/LENGTH with its host bits cleared, or nullopt when it is not even that.
// Used only after the strict parser refused TEXT, to tell a typo in the length from garbage.
template <typename Family>
std::optional<typename Family::Prefix> masked_prefix(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;
    }
    auto addr = Family::parse_address(text.substr(0, slash));
    auto digits = text.substr(slash + 1);
    unsigned len = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (!addr || digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
        len > Family::kBits) {
        return std::nullopt;
    }
    return typename Family::Prefix{mask_address(*addr, len), static_cast<uint8_t>(len)};
}

template <typename Family>
std::optional<typename Family::Prefix> read_prefix(const Field& field, IssueList& issues) {
    std::string format = std::string("ADDRESS/LENGTH, e.g. ") + Family::kExample;
    auto text = read_scalar(field, std::string(Family::kWhat) + " (" + format + ")", issues);
    if (!text) {
        return std::nullopt;
    }
    if (auto prefix = Family::parse_prefix(*text)) {
        return prefix;
    }
    if (auto masked = masked_prefix<Family>(*text)) {
        issues.add(field,
                   quote(*text) + " has host bits set: did you mean " + to_string(*masked) + "?");
    } else {
        issues.add(field, quote(*text) + " is not " + Family::kWhat + " (expected " + format + ")");
    }
    return std::nullopt;
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
        device.mtu = read_mtu(*mtu, issues).value_or(device.mtu);
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

// xlat64 copies the suffix bits one to one (RFC 7757 section 3.2), so both sides need the same
// number of them.
void check_suffix_lengths(const Located<Ipv4Prefix>& v4, const Located<Ipv6Prefix>& v6,
                          IssueList& issues) {
    unsigned v4_suffix = 32 - v4.prefix.len;
    unsigned v6_suffix = 128 - v6.prefix.len;
    if (v4_suffix == v6_suffix) {
        return;
    }
    unsigned fitting_len = 128 - v4_suffix;
    Ipv6Prefix fitting{mask_address(v6.prefix.addr, fitting_len),
                       static_cast<uint8_t>(fitting_len)};
    issues.add(v6.field, to_string(v4.prefix) + " has " + std::to_string(v4_suffix) +
                             " host bits but " + to_string(v6.prefix) + " has " +
                             std::to_string(v6_suffix) +
                             "; an EAM maps each address one to one, so use " + to_string(fitting));
}

// Two entries with the same prefix on one side would make that side's lookup ambiguous. Nested
// prefixes of different lengths are fine: the longest match wins (RFC 7757 section 3.2).
// Where a prefix was first seen: its entry's index and 1-based line.
struct FirstSeen {
    size_t index;
    int line;
};

template <typename Prefix>
void check_unique(const std::optional<Located<Prefix>>& side, size_t index,
                  std::map<Prefix, FirstSeen>& seen, IssueList& issues) {
    if (!side) {
        return;
    }
    auto [it, inserted] =
        seen.try_emplace(side->prefix, FirstSeen{index, side->field.mark.line + 1});
    if (!inserted) {
        issues.add(side->field, to_string(side->prefix) + " is already mapped by eamt[" +
                                    std::to_string(it->second.index) + "] (line " +
                                    std::to_string(it->second.line) + ")");
    }
}

void check_pool6_overlap(const Located<Ipv6Prefix>& v6, const std::optional<Ipv6Prefix>& pool6,
                         IssueList& issues) {
    if (pool6 && overlaps(*pool6, v6.prefix)) {
        issues.add(v6.field, to_string(v6.prefix) + " overlaps pool6 " + to_string(*pool6) +
                                 "; pool6 addresses must keep meaning IPv4 addresses");
    }
}

std::vector<EamEntry> read_eamt(const Field& field, const std::optional<Ipv6Prefix>& pool6,
                                IssueList& issues) {
    auto candidates = read_eamt_entries(field, issues);
    std::map<Ipv4Prefix, FirstSeen> seen_v4;
    std::map<Ipv6Prefix, FirstSeen> seen_v6;
    std::vector<EamEntry> eamt;
    for (size_t i = 0; i < candidates.size(); ++i) {
        const EamCandidate& c = candidates[i];
        check_unique(c.ipv4, i, seen_v4, issues);
        check_unique(c.ipv6, i, seen_v6, issues);
        if (c.ipv6) {
            check_pool6_overlap(*c.ipv6, pool6, issues);
        }
        if (c.ipv4 && c.ipv6) {
            check_suffix_lengths(*c.ipv4, *c.ipv6, issues);
            eamt.push_back({c.ipv4->prefix, c.ipv6->prefix});
        }
    }
    return eamt;
}

// An integer from lo to hi (decimal digits only).
std::optional<uint32_t> read_uint(const Field& field, uint32_t lo, uint32_t hi, IssueList& issues) {
    std::string expected = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    auto text = read_scalar(field, expected, issues);
    if (!text) {
        return std::nullopt;
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc{} || end != text->data() + text->size() || value < lo || value > hi) {
        issues.add(field, "expected " + expected + ", found " + describe(field.node));
        return std::nullopt;
    }
    return static_cast<uint32_t>(value);
}

std::optional<bool> read_bool(const Field& field, IssueList& issues) {
    auto text = read_scalar(field, "true or false", issues);
    if (!text) {
        return std::nullopt;
    }
    if (*text == "true") {
        return true;
    }
    if (*text == "false") {
        return false;
    }
    issues.add(field, "expected true or false, found " + describe(field.node));
    return std::nullopt;
}

// One of `choices`, returned as its index.
std::optional<size_t> read_choice(const Field& field, std::initializer_list<const char*> choices,
                                  IssueList& issues) {
    std::string expected = "one of " + join(choices);
    auto text = read_scalar(field, expected, issues);
    if (!text) {
        return std::nullopt;
    }
    size_t i = 0;
    for (const char* choice : choices) {
        if (*text == choice) {
            return i;
        }
        ++i;
    }
    issues.add(field, "expected " + expected + ", found " + describe(field.node));
    return std::nullopt;
}

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

// `translation:` (RFC 7915 behaviour). Each key is optional; see TranslationConfig.
void read_translation(const Field& field, TranslationConfig& t, IssueList& issues) {
    auto values =
        read_map(field,
                 {"lowest_ipv6_mtu", "udp_zero_checksum", "traffic_class", "allow_wkp_non_global",
                  "ipv4_address", "ipv6_address", "rfc6791_pool4", "rfc6791_pool6"},
                 issues);
    if (const Field* f = find(values, "lowest_ipv6_mtu")) {
        t.lowest_ipv6_mtu = read_uint(*f, kMinMtu, kMaxMtu, issues).value_or(t.lowest_ipv6_mtu);
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

Config read_config(const YAML::Node& root, IssueList& issues) {
    Config config;
    Field top{"", root, root.Mark()};
    if (!root.IsMap()) {
        top.key = kFileKey;
    }
    auto values = read_map(
        top, {"device", "pool6", "eamt", "control", "bpf", "nat64", "translation"}, issues);
    if (const Field* device = find(values, "device")) {
        read_device(*device, config.device, issues);
    }
    if (const Field* pool6 = find(values, "pool6")) {
        config.pool6 = read_pool6(*pool6, issues);
    }
    if (const Field* eamt = find(values, "eamt")) {
        config.eamt = read_eamt(*eamt, config.pool6, issues);
    }
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
        read_translation(*translation, config.translation, issues);
    }
    if (const Field* nat64 = find(values, "nat64")) {
        config.nat64 = read_nat64_config(
            nat64->node, nat64->key, nat64->mark,
            [&](const std::string& key, const YAML::Mark& mark, std::string message) {
                issues.add(key, mark, std::move(message));
            });
    }
    return config;
}

std::string format_issues(const std::string& source, const std::vector<ConfigIssue>& issues) {
    std::string out;
    for (const ConfigIssue& issue : issues) {
        out += out.empty() ? "" : "\n";
        out += source + ":";
        if (issue.line > 0) {
            out += std::to_string(issue.line) + ":" + std::to_string(issue.column) + ":";
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
