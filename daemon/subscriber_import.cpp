#include "daemon/subscriber_import.h"

#include <array>
#include <charconv>
#include <cstring>
#include <unordered_map>

namespace xlat64 {
namespace {

constexpr const char* kExpected = "expected PREFIX ACCOUNT, e.g. 2001:db8:100:1::/64 alice";

struct PrefixHash {
    size_t operator()(const Ipv6Prefix& p) const {
        uint64_t high = 0;
        uint64_t low = 0;
        std::memcpy(&high, p.addr.data(), 8);
        std::memcpy(&low, p.addr.data() + 8, 8);
        return std::hash<uint64_t>()(high * 0x9e3779b97f4a7c15ULL ^ low ^ p.len);
    }
};

// A line's first fields (a valid line has two: three tell "too many"), and how many it has: no
// allocation per line, a million lines are parsed twice per import.
struct Fields {
    std::array<std::string_view, 3> first;
    size_t count = 0;
    bool empty() const { return count == 0; }
    size_t size() const { return count; }
    std::string_view operator[](size_t i) const { return first[i]; }
};

Fields fields_of(std::string_view line) {
    Fields fields;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
            ++i;
        }
        const size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
            ++i;
        }
        if (i > start) {
            if (fields.count < fields.first.size()) {
                fields.first[fields.count] = line.substr(start, i - start);
            }
            ++fields.count;
        }
    }
    return fields;
}

// The prefix field, or what is wrong with it. Host bits are named with the prefix meant, rather
// than masked: in a provisioning file they are almost always a typo.
std::string prefix_problem(std::string_view text, Ipv6Prefix& out) {
    const std::string quoted = "'" + std::string(text) + "'";
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
        return quoted + " has no prefix length; " + kExpected;
    }
    auto address = parse_ipv6_address(text.substr(0, slash));
    unsigned len = 0;
    const std::string_view len_text = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (!address || ec != std::errc() || end != len_text.data() + len_text.size() || len > 128 ||
        len_text.empty()) {
        return quoted + " is not an IPv6 prefix; " + kExpected;
    }
    out = Ipv6Prefix{*address, static_cast<uint8_t>(len)};
    if (mask_address(*address, len) != *address) {
        return quoted + " has host bits set; did you mean " +
               to_string(Ipv6Prefix{mask_address(*address, len), out.len}) + "?";
    }
    return "";
}

std::string account_problem(std::string_view account) {
    if (account.size() > kMaxAccountBytes) {
        return "account id of " + std::to_string(account.size()) + " bytes; at most " +
               std::to_string(kMaxAccountBytes) + " (RADIUS User-Name)";
    }
    for (char c : account) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) {
            return "account id contains a control character; account ids are printable, without "
                   "whitespace or '#'";
        }
    }
    return "";
}

// What is wrong with one line's fields (empty: nothing), filling OUT.
std::string line_problem(const Fields& fields, SubscriberLine& out) {
    if (fields.size() == 1) {
        return "'" + std::string(fields[0]) + "' has no account id; " + kExpected;
    }
    if (fields.size() > 2) {
        return std::to_string(fields.size()) + " fields; " + kExpected +
               " (account ids cannot contain spaces)";
    }
    if (auto problem = prefix_problem(fields[0], out.prefix); !problem.empty()) {
        return problem;
    }
    if (auto problem = account_problem(fields[1]); !problem.empty()) {
        return problem;
    }
    out.account = std::string(fields[1]);
    return "";
}

}  // namespace

ParsedImport parse_subscriber_import(std::string_view text, size_t max_problems) {
    ParsedImport out;
    std::unordered_map<Ipv6Prefix, size_t, PrefixHash> seen;
    seen.reserve(text.size() / 32);  // about a line's length: no rehashing as it fills
    auto problem = [&](size_t line, std::string message) {
        if (out.problems.size() < max_problems) {
            out.problems.push_back({line, std::move(message)});
        }
        ++out.problem_count;
    };
    size_t number = 0;
    for (size_t start = 0; start < text.size();) {
        size_t end = text.find('\n', start);
        end = end == std::string_view::npos ? text.size() : end;
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        line = line.substr(0, line.find('#'));
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        const auto fields = fields_of(line);
        if (fields.empty()) {
            continue;
        }
        SubscriberLine entry;
        entry.line = number;
        if (auto message = line_problem(fields, entry); !message.empty()) {
            problem(number, std::move(message));
            continue;
        }
        auto [it, fresh] = seen.emplace(entry.prefix, number);
        if (!fresh) {
            problem(number, to_string(entry.prefix) + " is already on line " +
                                std::to_string(it->second) + "; each subscriber once");
            continue;
        }
        out.subscribers.push_back(std::move(entry));
    }
    return out;
}

std::string subscriber_import_text(const std::vector<SubscriberLine>& subscribers, size_t first,
                                   size_t last) {
    std::string out;
    out.reserve((last - first) * 48);
    for (size_t i = first; i < last && i < subscribers.size(); ++i) {
        out += to_string(subscribers[i].prefix);
        out += ' ';
        out += subscribers[i].account;
        out += '\n';
    }
    return out;
}

}  // namespace xlat64
