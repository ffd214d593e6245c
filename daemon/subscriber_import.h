// The input of `xlat64ctl subscriber import` (bulk provisioning): one subscriber per line,
//
//     PREFIX ACCOUNT          e.g.  2001:db8:100:1::/64 alice
//
// separated by spaces or tabs; `#` starts a comment (to the end of the line); blank lines are
// skipped. Account ids are 1 to 253 bytes (RADIUS User-Name) without whitespace, `#` or control
// characters, so that the allocation log's key=value lines stay parsable. Pure, shared by the CLI
// (which checks the whole file before sending anything) and the daemon (which checks each chunk
// again, and against the nat64 section).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/ip_address.h"

namespace xlat64 {

inline constexpr size_t kMaxAccountBytes = 253;
// Problems told by line (the CLI, and the daemon's check of a chunk); the rest are counted.
inline constexpr size_t kImportProblemsShown = 20;

struct SubscriberLine {
    Ipv6Prefix prefix;
    std::string account;
    size_t line = 0;  // 1-based line number in the text parsed
};

struct ImportProblem {
    size_t line = 0;
    std::string message;  // without the line number: the caller names the file and line
};

struct ParsedImport {
    std::vector<SubscriberLine> subscribers;
    std::vector<ImportProblem> problems;  // the first max_problems, in line order
    size_t problem_count = 0;             // all of them
};

// Every line checked; a line with a problem is left out of `subscribers`.
ParsedImport parse_subscriber_import(std::string_view text, size_t max_problems = 20);

// Lines FIRST..LAST-1 of SUBSCRIBERS in the canonical form (one "PREFIX ACCOUNT\n" each): what the
// CLI sends the daemon, whose line i is SUBSCRIBERS[first + i - 1].
std::string subscriber_import_text(const std::vector<SubscriberLine>& subscribers, size_t first,
                                   size_t last);

}  // namespace xlat64
