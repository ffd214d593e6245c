// The EAMT file (`eamt_file:`), for tables too large for YAML: yaml-cpp builds a node tree of the
// whole document, about 18 s and 3 GB for a million entries, where this format is read line by
// line in a fraction of a second. One entry per line, an IPv4 prefix and an IPv6 prefix separated
// by blanks; '#' starts a comment; blank lines are ignored:
//
//     # web servers
//     192.0.2.0/28     2001:db8:46::/124
//     198.51.100.7/32  2001:db8:1::7/128
//
// Internal to xlat64_config: config.cpp checks the entries against each other and against the
// rest of the configuration, like those of `eamt:`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace xlat64 {

struct EamtFileEntry {
    EamEntry entry;
    uint32_t line = 0;  // 1-based
};

// The entries of PATH in file order. Problems go to ISSUES under the key `eamt_file` with PATH and
// the line; after kMaxReportedLines bad lines one more issue counts the rest, so that a wrong file
// of a million lines does not produce a million messages.
std::vector<EamtFileEntry> read_eamt_file(const std::filesystem::path& path,
                                          yaml_reader::IssueList& issues);

inline constexpr size_t kMaxReportedLines = 20;

// Why V4 and V6 cannot form an EAM entry (they leave different numbers of host bits), with the
// IPv6 prefix that would fit; nullopt when they can. xlat64 copies the suffix bits one to one
// (RFC 7757 section 3.2).
std::optional<std::string> eam_suffix_problem(const Ipv4Prefix& v4, const Ipv6Prefix& v6);

}  // namespace xlat64
