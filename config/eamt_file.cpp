#include "config/eamt_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

namespace xlat64 {
namespace {

constexpr const char* kKey = "eamt_file";
constexpr const char* kFormat =
    "IPV4-PREFIX IPV6-PREFIX, e.g. 192.0.2.0/28 2001:db8:46::/124 (a '#' starts a comment)";

std::string read_whole_file(const std::filesystem::path& path, std::string& error) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                         &std::fclose);
    std::string text;
    if (!file) {
        error = std::strerror(errno);
        return text;
    }
    char buffer[1 << 16];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
        text.append(buffer, n);
    }
    if (std::ferror(file.get())) {
        error = std::strerror(errno);  // EISDIR: fopen accepts a directory
    }
    return text;
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// The blank-separated fields of LINE before any '#'.
std::vector<std::string_view> fields_of(std::string_view line) {
    if (auto hash = line.find('#'); hash != std::string_view::npos) {
        line = line.substr(0, hash);
    }
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_blank(line[i])) {
            ++i;
        }
        size_t start = i;
        while (i < line.size() && !is_blank(line[i])) {
            ++i;
        }
        if (i > start) {
            fields.push_back(line.substr(start, i - start));
        }
    }
    return fields;
}

// The entry on one line with its fields, or why there is none.
std::optional<EamEntry> parse_line(const std::vector<std::string_view>& fields,
                                   std::string& problem) {
    using yaml_reader::Ipv4Family;
    using yaml_reader::Ipv6Family;
    if (fields.size() != 2) {
        problem = "expected " + std::string(kFormat) + ", found " + std::to_string(fields.size()) +
                  (fields.size() == 1 ? " field" : " fields");
        return std::nullopt;
    }
    auto v4 = Ipv4Family::parse_prefix(fields[0]);
    if (!v4) {
        problem = yaml_reader::prefix_problem<Ipv4Family>(fields[0], {"192.0.2.0/28"});
        return std::nullopt;
    }
    auto v6 = Ipv6Family::parse_prefix(fields[1]);
    if (!v6) {
        problem = yaml_reader::prefix_problem<Ipv6Family>(fields[1], {"2001:db8:46::/124"});
        return std::nullopt;
    }
    if (auto suffix = eam_suffix_problem(*v4, *v6)) {
        problem = *suffix;
        return std::nullopt;
    }
    return EamEntry{*v4, *v6};
}

}  // namespace

std::optional<std::string> eam_suffix_problem(const Ipv4Prefix& v4, const Ipv6Prefix& v6) {
    unsigned v4_suffix = 32 - v4.len;
    unsigned v6_suffix = 128 - v6.len;
    if (v4_suffix == v6_suffix) {
        return std::nullopt;
    }
    unsigned fitting_len = 128 - v4_suffix;
    Ipv6Prefix fitting{mask_address(v6.addr, fitting_len), static_cast<uint8_t>(fitting_len)};
    return to_string(v4) + " has " + std::to_string(v4_suffix) + " host bits but " + to_string(v6) +
           " has " + std::to_string(v6_suffix) + "; an EAM maps each address one to one, so use " +
           to_string(fitting);
}

std::vector<EamtFileEntry> read_eamt_file(const std::filesystem::path& path,
                                          yaml_reader::IssueList& issues) {
    std::vector<EamtFileEntry> entries;
    std::string error;
    const std::string text = read_whole_file(path, error);
    if (!error.empty()) {
        issues.add_in_file(path.string(), kKey, 0, "cannot read " + path.string() + ": " + error);
        return entries;
    }
    size_t bad_lines = 0;
    uint32_t line_number = 0;
    std::string problem;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) {
            end = text.size();
        }
        ++line_number;
        auto fields = fields_of(std::string_view(text).substr(pos, end - pos));
        pos = end + 1;
        if (fields.empty()) {
            continue;
        }
        if (auto entry = parse_line(fields, problem)) {
            entries.push_back({*entry, line_number});
        } else if (++bad_lines <= kMaxReportedLines) {
            issues.add_in_file(path.string(), kKey, static_cast<int>(line_number), problem);
        }
    }
    if (bad_lines > kMaxReportedLines) {
        issues.add_in_file(path.string(), kKey, static_cast<int>(line_number),
                           std::to_string(bad_lines - kMaxReportedLines) +
                               " more lines have problems; only the first " +
                               std::to_string(kMaxReportedLines) + " are listed");
    }
    return entries;
}

}  // namespace xlat64
