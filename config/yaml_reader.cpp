#include "config/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <tuple>
#include <utility>

namespace xlat64::yaml_reader {

void IssueList::add(const std::string& key, const YAML::Mark& mark, std::string message) {
    // yaml-cpp counts from 0 and uses -1 for "no position".
    int line = mark.line >= 0 ? mark.line + 1 : 0;
    int column = line > 0 && mark.column >= 0 ? mark.column + 1 : 0;
    issues_.push_back({key, line, column, std::move(message)});
}

void IssueList::add_in_file(const std::string& file, const std::string& key, int line,
                            std::string message) {
    issues_.push_back({key, line, 0, std::move(message), file});
}

std::vector<ConfigIssue> IssueList::take_sorted() {
    // The configuration's own problems first, then those of the files it names.
    std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
        return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
    });
    return std::move(issues_);
}

std::string child_key(const std::string& parent, const std::string& name) {
    return parent.empty() ? name : parent + "." + name;
}

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) {
        out += out.empty() ? "" : ", ";
        out += name;
    }
    return out;
}

std::string quote(const std::string& text, Quoting quoting) {
    std::string out = "'";
    for (unsigned char c : text) {
        if (quoting == Quoting::raw || (c >= 0x20 && c != 0x7f)) {
            out += static_cast<char>(c);
        } else if (quoting == Quoting::replace) {
            out += '?';
        } else {
            char escaped[5];
            std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
            out += escaped;
        }
    }
    return out + "'";
}

std::string describe(const YAML::Node& node, Quoting quoting) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return quote(node.Scalar(), quoting);
        default:
            return "nothing";
    }
}

Field value_field(std::string key, const YAML::Node& key_node, const YAML::Node& value) {
    const YAML::Mark& mark = value.IsNull() ? key_node.Mark() : value.Mark();
    return {std::move(key), value, mark};
}

std::map<std::string, Field> read_map(const Field& map, const std::vector<std::string>& valid,
                                      IssueList& issues, const MapRules& rules) {
    std::map<std::string, Field> values;
    std::map<std::string, int> key_lines;  // 1-based, for naming the first of a duplicate
    if (rules.null_is_empty && map.node.IsNull()) {
        return values;
    }
    if (!map.node.IsMap()) {
        issues.add(map, "expected a map with keys " + join(valid) + ", found " +
                            describe(map.node, rules.found_quoting));
        return values;
    }
    for (const auto& pair : map.node) {
        const YAML::Node& key = pair.first;
        if (rules.require_key_names && !key.IsScalar()) {
            issues.add(map.key.empty() ? kFileKey : map.key, key.Mark(),
                       "expected a key name, found " + describe(key, rules.found_quoting));
            continue;
        }
        std::string name = key.IsScalar() ? key.Scalar() : "";
        std::string path = child_key(map.key, name);
        if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
            issues.add(path, key.Mark(),
                       "unknown key " + quote(name, rules.unknown_key_quoting) +
                           "; valid keys here: " + join(valid));
            continue;
        }
        Field value = value_field(path, key, pair.second);
        int line = (rules.duplicate_line_of_value ? value.mark : key.Mark()).line + 1;
        auto [it, inserted] = key_lines.try_emplace(name, line);
        if (inserted) {
            values.emplace(name, std::move(value));
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
                                       IssueList& issues, Quoting quoting) {
    if (!field.node.IsScalar()) {
        issues.add(field, "expected " + expected + ", found " + describe(field.node, quoting));
        return std::nullopt;
    }
    return field.node.Scalar();
}

std::optional<uint64_t> parse_uint(std::string_view text) {
    uint64_t out = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return out;
}

std::optional<uint64_t> read_uint(const Field& field, uint64_t lo, uint64_t hi, IssueList& issues,
                                  Quoting quoting) {
    std::string expected = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    auto text = read_scalar(field, expected, issues, quoting);
    if (!text) {
        return std::nullopt;
    }
    auto value = parse_uint(*text);
    if (!value || *value < lo || *value > hi) {
        issues.add(field, "expected " + expected + ", found " + describe(field.node, quoting));
        return std::nullopt;
    }
    return value;
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

std::optional<size_t> read_choice(const Field& field, const std::vector<std::string>& choices,
                                  IssueList& issues) {
    std::string expected = "one of " + join(choices);
    auto text = read_scalar(field, expected, issues);
    if (!text) {
        return std::nullopt;
    }
    auto it = std::find(choices.begin(), choices.end(), *text);
    if (it != choices.end()) {
        return static_cast<size_t>(it - choices.begin());
    }
    issues.add(field, "expected " + expected + ", found " + describe(field.node));
    return std::nullopt;
}

}  // namespace xlat64::yaml_reader
