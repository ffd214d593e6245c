#include "cli/format.h"

#include <cstdio>
#include <string_view>
#include <vector>

namespace xlat64 {
namespace {

using nlohmann::json;

// A missing or null field prints as "-", so an older or newer daemon never breaks the output.
std::string text(const json& object, std::string_view key) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return "-";
    }
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string field(std::string_view label, const std::string& value) {
    std::string line(label);
    line.resize(14, ' ');
    return line + value + "\n";
}

std::string device_line(const json& device) {
    if (!device.value("present", false)) {
        return text(device, "name") + ": absent";
    }
    return text(device, "name") + ": ifindex " + text(device, "ifindex") + ", mtu " +
           text(device, "mtu") + (device.value("up", false) ? ", up" : ", down") +
           (device.value("managed", false) ? ", managed" : ", NOT managed by xlat64d");
}

std::string program_line(const json& program) {
    if (!program.value("attached", false)) {
        return "not attached (loaded id " + text(program, "loaded_id") + ")";
    }
    return "attached: id " + text(program, "id") + ", tag " + text(program, "tag");
}

// One configured ingress interface (translation.ingress_interfaces) of the status.
std::string ingress_line(const json& entry) {
    const std::string state = text(entry, "state");
    std::string out = text(entry, "name") + ": " + state;
    if (entry.contains("program_id")) {
        out += " (program id " + text(entry, "program_id") + ")";
    }
    if (state == "missing") {
        out += ": no such interface; its packets take the device path";
    } else if (entry.contains("error")) {
        out += ": " + text(entry, "error");
    }
    if (entry.contains("warning")) {
        out += "; WARNING: " + text(entry, "warning");
    }
    return out;
}

std::string row(std::string_view name, uint64_t packets, uint64_t bytes, std::string_view help) {
    char line[256];
    std::snprintf(line, sizeof(line), "  %-26.*s %14llu %16llu", static_cast<int>(name.size()),
                  name.data(), static_cast<unsigned long long>(packets),
                  static_cast<unsigned long long>(bytes));
    std::string out = line;
    if (!help.empty()) {
        out += "  " + std::string(help);
    }
    return out + "\n";
}

std::string counter_row(const json& counter, bool with_help) {
    return row(counter.value("name", "?"), counter.value("packets", uint64_t{0}),
               counter.value("bytes", uint64_t{0}),
               with_help ? counter.value("help", std::string()) : std::string());
}

}  // namespace

std::string format_duration(long long seconds) {
    const long long days = seconds / 86400;
    char out[64];
    if (days > 0) {
        std::snprintf(out, sizeof(out), "%lldd %02lld:%02lld:%02lld", days, seconds / 3600 % 24,
                      seconds / 60 % 60, seconds % 60);
    } else {
        std::snprintf(out, sizeof(out), "%02lld:%02lld:%02lld", seconds / 3600, seconds / 60 % 60,
                      seconds % 60);
    }
    return out;
}

std::string format_status(const json& status) {
    const json empty = json::object();
    std::string out;
    out += field("version", text(status, "version"));
    out += field("pid", text(status, "pid"));
    out += field("config file", text(status, "config_file"));
    out += field("started at", text(status, "started_at") + " (up " +
                                   format_duration(status.value("uptime_seconds", 0LL)) + ")");
    out += field("device", device_line(status.value("device", empty)));
    out += field("program", program_line(status.value("program", empty)));
    out += field("pool6", text(status, "pool6"));
    out += field("EAMT entries", text(status, "eamt_entries"));
    out += field("routes", text(status, "routes"));
    out += field("pin dir", text(status, "pin_dir"));
    // Shown only when configured: the fast path is opt-in.
    std::string label = "ingress";
    for (const json& entry : status.value("ingress_interfaces", json::array())) {
        out += field(label, ingress_line(entry));
        label.clear();
    }
    if (status.contains("nat64") && !status["nat64"].is_null()) {
        const json& n = status["nat64"];
        out += field("nat64", text(n, "mode") + ", " + text(n, "public_addresses") +
                                  " public addresses, " + text(n, "blocks") + " blocks of " +
                                  text(n, "block_size") + " ports");
    }
    out += field("store", text(status, "store"));
    if (status.contains("last_reload_error")) {
        out += field("last reload", "FAILED, running configuration kept:");
        out += text(status, "last_reload_error") + "\n";
    }
    return out;
}

std::string format_reload(const json& result) {
    const long long changes = result.value("changes", 0LL);
    if (changes == 0) {
        return "reload: " + text(result, "config_file") +
               " is valid; the kernel already matches it\n";
    }
    return "reload: " + text(result, "config_file") + " applied, " + std::to_string(changes) +
           (changes == 1 ? " change\n" : " changes\n");
}

std::string format_stats(const json& stats, bool show_all) {
    const json counters = stats.value("counters", json::array());
    char header[128];
    std::snprintf(header, sizeof(header), "%-28s %14s %16s\n", "COUNTER", "PACKETS", "BYTES");
    std::string out = std::string(header) + "translated:\n";
    std::string drops;
    std::string events;
    size_t hidden = 0;
    for (const json& counter : counters) {
        if (counter.value("event", false)) {
            events += counter_row(counter, false);
        } else if (!counter.value("drop", false)) {
            out += counter_row(counter, false);
        } else if (show_all || counter.value("packets", uint64_t{0}) != 0) {
            drops += counter_row(counter, true);
        } else {
            ++hidden;
        }
    }
    out += "dropped:\n" + (drops.empty() ? std::string("  (none)\n") : drops);
    // Present when translation.ingress_interfaces is configured or has counted something.
    if (stats.contains("ingress")) {
        out += "at interfaces' ingress (fast path; included in the counts above):\n";
        for (const json& counter : stats["ingress"]) {
            out += counter_row(counter, true);
        }
    }
    if (!events.empty()) {
        out += "events (not packets):\n" + events;
    }
    if (hidden > 0) {
        out +=
            "  (" + std::to_string(hidden) + " drop counters at zero hidden; --all shows them)\n";
    }
    const json totals = stats.value("totals", json::object());
    out += "total: " + text(totals, "translated") + " packets translated, " +
           text(totals, "dropped") + " dropped\n";
    return out;
}

std::string format_pool(const json& pool) {
    std::string out;
    std::string prefixes;
    for (const json& p : pool.value("public_prefixes", json::array())) {
        prefixes += (prefixes.empty() ? "" : ", ") + p.get<std::string>();
    }
    const json& blocks = pool.value("blocks", json::object());
    const json& sessions = pool.value("sessions", json::object());
    out += field("mode", text(pool, "mode"));
    out += field("public", prefixes + " (" + text(pool, "public_addresses") + " addresses)");
    out += field("ports", text(pool, "ports") + ", blocks of " + text(pool, "block_size") + " (" +
                              text(pool, "blocks_per_address") + " per address)");
    out += field("blocks", text(blocks, "total") + " total, " + text(blocks, "used") + " used, " +
                               text(blocks, "free") + " free");
    out += field("internal", text(pool, "internal_pool") + ", " + text(pool, "hosts") + " hosts");
    out += field("sessions", "tcp " + text(sessions, "tcp") + ", udp " + text(sessions, "udp") +
                                 ", icmp " + text(sessions, "icmp") + ", other " +
                                 text(sessions, "other"));
    for (const json& e : pool.value("exhausted", json::array())) {
        out += field("exhausted", text(e, "internal") + " " + text(e, "protocol") + ": " +
                                      text(e, "refused") + " refused");
    }
    out += field("drops", "unmapped internal " + text(pool, "unmapped_drops") +
                              ", inbound to internal " + text(pool, "inbound_drops") +
                              ", spoofed internal source " + text(pool, "spoofed_source_drops"));
    return out;
}

std::string format_subscribers(const json& subscribers) {
    char line[256];
    std::string out;
    std::snprintf(line, sizeof(line), "%-28s %-16s %-15s %-11s %-18s %5s %8s\n", "SUBSCRIBER",
                  "BLOCK", "PUBLIC", "PORTS", "INTERNAL", "HOSTS", "SESSIONS");
    out += line;
    for (const json& s : subscribers) {
        std::snprintf(line, sizeof(line), "%-28s %-16s %-15s %-11s %-18s %5s %8s\n",
                      text(s, "subscriber").c_str(), text(s, "block").c_str(),
                      text(s, "public_address").c_str(), text(s, "ports").c_str(),
                      text(s, "internal").c_str(), text(s, "hosts").c_str(),
                      text(s, "sessions").c_str());
        out += line;
    }
    return out;
}

std::string format_subscriber(const json& s) {
    std::string out = field("subscriber", text(s, "subscriber") + " (" + text(s, "mode") + ")");
    if (!s.contains("block") || s["block"].is_null()) {
        return out + field("block", "none: " + text(s, "note"));
    }
    out += field("block", text(s, "block"));
    out += field("public", text(s, "public_address") + " ports " + text(s, "ports"));
    out += field("internal", text(s, "internal"));
    const json& sessions = s.value("sessions", json::object());
    out +=
        field("sessions",
              text(sessions, "total") + " in conntrack (tcp " + text(sessions, "tcp") + ", udp " +
                  text(sessions, "udp") + ", icmp " + text(sessions, "icmp") + ")" +
                  (s.contains("sessions_created") ? ", " + text(s, "sessions_created") + " created"
                                                  : std::string()));
    for (const json& h : s.value("hosts", json::array())) {
        out += field("host", text(h, "address") + " -> " + text(h, "internal") + ", idle " +
                                 format_duration(h.value("idle_seconds", 0LL)));
    }
    for (const json& e : s.value("exhausted", json::array())) {
        out += field("exhausted", text(e, "protocol") + ": " + text(e, "refused") + " refused");
    }
    return out;
}

std::string format_subscriber_change(const json& c) {
    std::string out = field("subscriber", text(c, "subscriber"));
    if (c.contains("account")) {
        out += field("account", text(c, "account"));
    }
    if (c.contains("block")) {
        out += field("block", text(c, "block") + ": " + text(c, "public_address") + " ports " +
                                  text(c, "ports") + ", internal " + text(c, "internal"));
    }
    if (c.contains("released_block")) {
        out += field("released", "block " + text(c, "released_block"));
    }
    if (c.contains("removed")) {
        out += field("removed", c.value("removed", false) ? "yes" : "it was not provisioned");
    }
    return out;
}

std::string format_trace(const json& t) {
    std::string out = field("address", text(t, "address") + " at " + text(t, "at"));
    out += field("subscriber", text(t, "subscriber"));
    const std::string account = text(t, "account");
    out += field("account", account.empty() ? "-" : account);
    out += field("block", text(t, "public_address") + " ports " + text(t, "ports") + " (" +
                              text(t, "mode") + ")");
    const std::string until =
        t.contains("until") && !t["until"].is_null() ? text(t, "until") : std::string("still held");
    out += field("held", "from " + text(t, "from") + " until " + until);
    return out;
}

std::string format_eamt(const json& entries) {
    char line[256];
    std::snprintf(line, sizeof(line), "%-20s %-42s %s\n", "IPV4", "IPV6", "ORIGIN");
    std::string out = line;
    for (const json& e : entries) {
        std::string origin = text(e, "origin");
        if (e.contains("added")) {
            origin += ", added " + text(e, "added");
        }
        std::snprintf(line, sizeof(line), "%-20s %-42s %s\n", text(e, "ipv4").c_str(),
                      text(e, "ipv6").c_str(), origin.c_str());
        out += line;
    }
    return out;
}

std::string format_eamt_change(const json& c) {
    if (c.value("removed", false)) {
        return "eamt: removed " + text(c, "ipv4") + "\n";
    }
    return "eamt: added " + text(c, "ipv4") + " <-> " + text(c, "ipv6") + "\n";
}

}  // namespace xlat64
