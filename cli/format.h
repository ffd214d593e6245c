// Human-readable renderings of the daemon's answers for xlat64ctl.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace xlat64 {

std::string format_status(const nlohmann::json& status);
// Translation counters first, then drop counters with their meaning; drop counters that are zero
// are left out unless show_all.
std::string format_stats(const nlohmann::json& stats, bool show_all);
std::string format_duration(long long seconds);
// The answer to a successful reload: the file and the number of kernel changes.
std::string format_reload(const nlohmann::json& result);
// Stateful NAT64: `xlat64ctl pool`, `subscriber list` and `subscriber show`.
std::string format_pool(const nlohmann::json& pool);
std::string format_subscribers(const nlohmann::json& subscribers);
std::string format_subscriber(const nlohmann::json& subscriber);
std::string format_subscriber_change(const nlohmann::json& change);
std::string format_trace(const nlohmann::json& trace);
std::string format_eamt(const nlohmann::json& entries);
std::string format_eamt_change(const nlohmann::json& change);

}  // namespace xlat64
