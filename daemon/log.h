// Log lines for stderr. Under systemd (JOURNAL_STREAM names our stderr) each line carries the
// sd-daemon priority prefix ("<3>"), so the journal records levels; plain text otherwise.
#pragma once

#include <string_view>

namespace xlat64 {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// A message with several lines is logged as several lines of the same level.
void log_message(LogLevel level, std::string_view message);

inline void log_error(std::string_view message) {
    log_message(LogLevel::error, message);
}
inline void log_warning(std::string_view message) {
    log_message(LogLevel::warning, message);
}
inline void log_notice(std::string_view message) {
    log_message(LogLevel::notice, message);
}
inline void log_info(std::string_view message) {
    log_message(LogLevel::info, message);
}

// Routes libbpf's own messages (verifier, netlink errors) through log_message.
void route_libbpf_log();

}  // namespace xlat64
