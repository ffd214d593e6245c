// Reading pieces shared by config.cpp and nat64_config.cpp, so that every section reports
// problems the same way (key path, line, column, "expected X, found Y"). Internal to
// xlat64_config; not part of the public configuration API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/ip_address.h"

namespace xlat64::yaml_reader {

// The pseudo-key of problems with the file as a whole (unreadable, not YAML, not a map).
inline constexpr const char* kFileKey = "(file)";

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
    void add(const std::string& key, const YAML::Mark& mark, std::string message);
    void add(const Field& field, std::string message) {
        add(field.key, field.mark, std::move(message));
    }
    // A problem on line LINE of FILE, another file than the configuration (eamt_file).
    void add_in_file(const std::string& file, const std::string& key, int line,
                     std::string message);
    bool empty() const { return issues_.empty(); }
    // Lets a section tell whether reading it found problems, without a list of its own.
    size_t size() const { return issues_.size(); }

    // In file order, so the report reads top to bottom whatever order the checks ran in.
    std::vector<ConfigIssue> take_sorted();

  private:
    std::vector<ConfigIssue> issues_;
};

// How a found value is shown. A value quoted in YAML may hold a newline, which must not break
// the one-line-per-issue report; the nat64 section and the rest of the file have always shown
// control characters differently, and their messages are kept as they are.
enum class Quoting {
    raw,      // as written
    escape,   // control characters as \xNN
    replace,  // control characters as '?'
};

std::string child_key(const std::string& parent, const std::string& name);
std::string join(const std::vector<std::string>& names);
// TEXT in single quotes.
std::string quote(const std::string& text, Quoting quoting = Quoting::escape);
// What was found, for messages of the form "expected X, found Y".
std::string describe(const YAML::Node& node, Quoting quoting = Quoting::escape);
Field value_field(std::string key, const YAML::Node& key_node, const YAML::Node& value);

// Where read_map's reports differ between sections; the defaults are those of config.cpp.
struct MapRules {
    // An empty value (`device:`) counts as an empty map, so every key inside takes its default.
    bool null_is_empty = true;
    // A key that is not a name is reported as such, rather than as the unknown key ''.
    bool require_key_names = true;
    Quoting unknown_key_quoting = Quoting::raw;
    Quoting found_quoting = Quoting::escape;
    // A duplicate names the line of the first one's value rather than of its key.
    bool duplicate_line_of_value = false;
};

// The values of a map by key name (first occurrence). Reports unknown keys and duplicate keys;
// yaml-cpp would otherwise let one duplicate win silently.
std::map<std::string, Field> read_map(const Field& map, const std::vector<std::string>& valid,
                                      IssueList& issues, const MapRules& rules = {});

const Field* find(const std::map<std::string, Field>& values, const std::string& name);

std::optional<std::string> read_scalar(const Field& field, const std::string& expected,
                                       IssueList& issues, Quoting quoting = Quoting::escape);

// An integer from lo to hi (decimal digits only).
std::optional<uint64_t> read_uint(const Field& field, uint64_t lo, uint64_t hi, IssueList& issues,
                                  Quoting quoting = Quoting::escape);
// TEXT as decimal digits only: no sign, no hex, no fraction.
std::optional<uint64_t> parse_uint(std::string_view text);

std::optional<bool> read_bool(const Field& field, IssueList& issues);

// One of `choices`, returned as its index.
std::optional<size_t> read_choice(const Field& field, const std::vector<std::string>& choices,
                                  IssueList& issues);

// What read_prefix and read_address need to know about each address family.
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

// Where read_prefix's reports differ between sections; the defaults are those of config.cpp.
struct PrefixRules {
    const char* example = nullptr;  // nullptr: the family's kExample
    // Tell a prefix with host bits set (and suggest the masked one) from one that is not a prefix
    // at all, rather than give one message for both.
    bool suggest_masked = true;
    Quoting quoting = Quoting::escape;
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
    auto len = parse_uint(text.substr(slash + 1));
    if (!addr || !len || *len > Family::kBits) {
        return std::nullopt;
    }
    return typename Family::Prefix{mask_address(*addr, static_cast<unsigned>(*len)),
                                   static_cast<uint8_t>(*len)};
}

// Why TEXT, refused by Family::parse_prefix, is not a valid prefix, and what would be.
template <typename Family>
std::string prefix_problem(std::string_view text, const PrefixRules& rules = {}) {
    std::string format =
        std::string("ADDRESS/LENGTH, e.g. ") + (rules.example ? rules.example : Family::kExample);
    std::string found = quote(std::string(text), rules.quoting);
    if (!rules.suggest_masked) {
        return found + " is not " + Family::kWhat + " (" + format + ") with its host bits zero";
    }
    if (auto masked = masked_prefix<Family>(text)) {
        return found + " has host bits set: did you mean " + to_string(*masked) + "?";
    }
    return found + " is not " + Family::kWhat + " (expected " + format + ")";
}

template <typename Family>
std::optional<typename Family::Prefix> read_prefix(const Field& field, IssueList& issues,
                                                   const PrefixRules& rules = {}) {
    std::string expected = std::string(Family::kWhat) + " (ADDRESS/LENGTH, e.g. " +
                           (rules.example ? rules.example : Family::kExample) + ")";
    auto text = read_scalar(field, expected, issues, rules.quoting);
    if (!text) {
        return std::nullopt;
    }
    if (auto prefix = Family::parse_prefix(*text)) {
        return prefix;
    }
    issues.add(field, prefix_problem<Family>(*text, rules));
    return std::nullopt;
}

}  // namespace xlat64::yaml_reader
