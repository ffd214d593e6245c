#include "daemon/nat64_ledger.h"

#include <time.h>

#include <stdexcept>
#include <utility>

#include "daemon/log.h"
#include "daemon/nat64_layout.h"
#include "daemon/port_blocks.h"

namespace xlat64 {
namespace {

constexpr const char* kConfigurationsKey = "nat64.configurations";

nlohmann::json to_json(const Nat64Config& c) {
    nlohmann::json prefixes = nlohmann::json::array();
    for (const Ipv6Prefix& p : c.prefixes) {
        prefixes.push_back(to_string(p));
    }
    nlohmann::json publics = nlohmann::json::array();
    for (const Ipv4Prefix& p : c.public_prefixes) {
        publics.push_back(to_string(p));
    }
    return {{"prefixes", prefixes},
            {"subscriber_length", c.subscriber_length},
            {"hosts_per_subscriber", c.hosts_per_subscriber},
            {"internal_pool", to_string(c.internal_pool)},
            {"public_prefixes", publics},
            {"ports", {c.ports.first, c.ports.last}},
            {"block_size", c.block_size},
            {"mode", c.mode == Nat64Mode::dynamic ? "dynamic" : "deterministic"}};
}

Nat64Config from_json(const nlohmann::json& j) {
    Nat64Config c;
    for (const auto& p : j.at("prefixes")) {
        c.prefixes.push_back(parse_ipv6_prefix(p.get<std::string>()).value());
    }
    c.subscriber_length = j.at("subscriber_length").get<uint8_t>();
    c.hosts_per_subscriber = j.at("hosts_per_subscriber").get<uint32_t>();
    c.internal_pool = parse_ipv4_prefix(j.at("internal_pool").get<std::string>()).value();
    for (const auto& p : j.at("public_prefixes")) {
        c.public_prefixes.push_back(parse_ipv4_prefix(p.get<std::string>()).value());
    }
    c.ports = {j.at("ports").at(0).get<uint16_t>(), j.at("ports").at(1).get<uint16_t>()};
    c.block_size = j.at("block_size").get<uint32_t>();
    c.mode = j.at("mode") == "dynamic" ? Nat64Mode::dynamic : Nat64Mode::deterministic;
    return c;
}

}  // namespace

int64_t wall_now() {
    return static_cast<int64_t>(time(nullptr));
}

int64_t wall_time_of_monotonic(uint64_t monotonic_ns) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const int64_t mono_now = static_cast<int64_t>(now.tv_sec);
    return wall_now() - (mono_now - static_cast<int64_t>(monotonic_ns / 1000000000ULL));
}

std::string iso8601(int64_t unix_seconds) {
    const time_t t = static_cast<time_t>(unix_seconds);
    tm utc{};
    gmtime_r(&t, &utc);
    char text[32];
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

Nat64Ledger::Nat64Ledger(Store& store, Nat64Config config, const StateConfig& state)
    : store_(store),
      config_(std::move(config)),
      state_(state),
      layout_(config_),
      subscribers_(config_) {
    if (state_.log_file) {
        log_file_.open(*state_.log_file, std::ios::app);
        if (!log_file_) {
            log_warning("nat64: cannot append to the allocation log " + state_.log_file->string() +
                        "; allocations are logged to the journal only");
        }
    }
}

std::string Nat64Ledger::account_of(const Ipv6Prefix& subscriber) {
    auto s = store_.subscriber(subscriber);
    return s ? s->account : std::string();
}

// The documented, stable line (README "Traceability"): space-separated key=value after the event
// name, in this order; new keys are only ever appended.
std::string Nat64Ledger::line_of(const std::string& event, const Allocation& a,
                                 const std::string& time, const std::string& extra) const {
    return "nat64 " + event + " time=" + time + " subscriber=" + to_string(a.subscriber) +
           " account=" + (a.account.empty() ? "-" : a.account) +
           " public=" + to_string(a.public_address) + " ports=" + std::to_string(a.first_port) +
           "-" + std::to_string(a.last_port) + " block=" + std::to_string(a.block) +
           " internal=" + to_string(a.internal) + extra;
}

void Nat64Ledger::log_line(const std::string& event, const Allocation& a, int64_t when,
                           const std::string& extra) {
    log_lines(line_of(event, a, iso8601(when), extra) + '\n');
}

void Nat64Ledger::log_lines(const std::string& lines) {
    if (lines.empty()) {
        return;
    }
    log_notice(std::string_view(lines).substr(0, lines.size() - 1));
    if (log_file_) {
        log_file_ << lines;
        log_file_.flush();
    }
}

// SUBSCRIBER holding BLOCK under the running configuration, as the store records it.
Allocation Nat64Ledger::allocation_of(const Ipv6Prefix& subscriber, uint32_t block) {
    return allocation_of(subscriber, account_of(subscriber), block);
}

Allocation Nat64Ledger::allocation_of(const Ipv6Prefix& subscriber, const std::string& account,
                                      uint32_t block) const {
    const NatBlock b = layout_(block);
    Allocation a;
    a.subscriber = subscriber;
    a.account = account;
    a.block = block;
    a.internal = b.internal;
    a.public_address = b.public_address;
    a.first_port = b.first_port;
    a.last_port = b.last_port;
    return a;
}

std::vector<Store::SubscriberChange> Nat64Ledger::import(
    const std::vector<Subscriber>& subscribers,
    const std::function<bool(std::vector<Allocation>&)>& next_allocations) {
    // No savepoints inside: a failure rolls the whole chunk back, as it must anyway.
    auto t = store_.transaction();
    auto changes = store_.add_subscribers(t, subscribers);
    std::vector<Allocation> batch;
    while (next_allocations(batch)) {
        store_.open_allocations(t, batch);
        batch.clear();
    }
    t.commit();
    return changes;
}

Allocation Nat64Ledger::imported(const Subscriber& s, uint32_t block, int64_t from) const {
    Allocation a = allocation_of(s.prefix, s.account, block);
    a.valid_from = from;
    return a;
}

std::string Nat64Ledger::allocate_line(const Allocation& a, const std::string& time) const {
    return line_of("allocate", a, time, "") + '\n';
}

void Nat64Ledger::allocated(const Ipv6Prefix& subscriber, uint32_t block, int64_t from,
                            const std::string& note) {
    Allocation a = allocation_of(subscriber, block);
    a.valid_from = from;
    store_.open_allocation(a);
    log_line("allocate", a, from, note);
}

std::vector<size_t> Nat64Ledger::allocated(const std::vector<Opening>& openings) {
    std::vector<size_t> refused;
    std::vector<Allocation> recorded;
    recorded.reserve(openings.size());
    auto t = store_.transaction();
    for (size_t i = 0; i < openings.size(); ++i) {
        Allocation a = allocation_of(openings[i].subscriber, openings[i].block);
        a.valid_from = openings[i].from;
        try {
            store_.open_allocation(a);  // a refused row leaves the transaction open
            recorded.push_back(std::move(a));
        } catch (const StoreError& e) {
            if (e.kind() != StoreError::Kind::conflict) {
                throw;
            }
            refused.push_back(i);
        }
    }
    t.commit();
    std::string lines;
    for (const Allocation& a : recorded) {
        lines += line_of("allocate", a, iso8601(a.valid_from), "") + '\n';
    }
    log_lines(lines);
    return refused;
}

void Nat64Ledger::released(const Ipv6Prefix& subscriber, uint32_t block, int64_t until,
                           int64_t held_seconds, const std::string& reason) {
    store_.close_allocation(subscriber, block, until);
    log_line("release", allocation_of(subscriber, block), until,
             " held=" + std::to_string(held_seconds) + "s reason=" + reason);
}

void Nat64Ledger::released(const std::vector<Release>& releases, int64_t until) {
    if (releases.empty()) {
        return;
    }
    auto t = store_.transaction();
    for (const Release& r : releases) {
        store_.close_allocation(r.subscriber, r.block, until);
    }
    t.commit();
    const std::string time = iso8601(until);
    std::string lines;
    for (const Release& r : releases) {
        lines += line_of("release", allocation_of(r.subscriber, r.block), time,
                         " held=" + std::to_string(r.held_seconds) + "s reason=" + r.reason) +
                 '\n';
    }
    log_lines(lines);
}

bool Nat64Ledger::matches_layout(const Allocation& a) const {
    if (config_.mode != Nat64Mode::dynamic || a.block >= nat64_block_count(config_) ||
        a.subscriber.len != config_.subscriber_length ||
        !subscribers_.index_of(a.subscriber.addr)) {
        return false;
    }
    const NatBlock b = layout_(a.block);
    return b.internal == a.internal && b.public_address == a.public_address &&
           b.first_port == a.first_port && b.last_port == a.last_port;
}

Nat64Ledger::OpenAllocations Nat64Ledger::restorable_leases() {
    OpenAllocations out;
    if (config_.mode != Nat64Mode::dynamic) {
        return out;
    }
    out.all = store_.open_allocation_list();
    out.restorable.reserve(out.all.size());
    for (const Allocation& a : out.all) {
        if (matches_layout(a)) {
            out.restorable.push_back({a.subscriber, static_cast<uint32_t>(a.block)});
        }
    }
    return out;
}

void Nat64Ledger::close_changed_by_configuration(const std::vector<Allocation>& open) {
    std::vector<const Allocation*> changed;
    for (const Allocation& a : open) {
        if (!matches_layout(a)) {
            changed.push_back(&a);
        }
    }
    if (changed.empty()) {
        return;
    }
    const int64_t now = wall_now();
    auto t = store_.transaction();
    for (const Allocation* a : changed) {
        store_.close_allocation(a->subscriber, a->block, now);
    }
    t.commit();
    // The stored allocations, not the running configuration: their blocks mean something else.
    const std::string time = iso8601(now);
    std::string lines;
    for (const Allocation* a : changed) {
        lines += line_of("release", *a, time,
                         " held=" + std::to_string(now - a->valid_from) +
                             "s reason=configuration-changed") +
                 '\n';
    }
    log_lines(lines);
}

void Nat64Ledger::record_configuration() {
    nlohmann::json history = nlohmann::json::array();
    if (auto text = store_.meta(kConfigurationsKey)) {
        history = nlohmann::json::parse(*text, nullptr, false);
        if (!history.is_array()) {
            history = nlohmann::json::array();
        }
    }
    const nlohmann::json current = to_json(config_);
    if (!history.empty() && history.back().value("config", nlohmann::json()) == current) {
        return;
    }
    history.push_back({{"from", wall_now()}, {"config", current}});
    store_.set_meta(kConfigurationsKey, history.dump());
}

nlohmann::json Nat64Ledger::trace(const Ipv4Address& address, uint16_t port, int64_t at) {
    const std::string what = to_string(address) + ":" + std::to_string(port);
    // The configuration valid at AT, and when it was replaced.
    std::optional<Nat64Config> config;
    int64_t from = 0;
    std::optional<int64_t> until;
    if (auto text = store_.meta(kConfigurationsKey)) {
        auto history = nlohmann::json::parse(*text, nullptr, false);
        for (size_t i = 0; history.is_array() && i < history.size(); ++i) {
            if (history[i].value("from", int64_t{0}) <= at) {
                config = from_json(history[i].at("config"));
                from = history[i].value("from", int64_t{0});
                until = i + 1 < history.size()
                            ? std::optional(history[i + 1].value("from", int64_t{0}))
                            : std::nullopt;
            }
        }
    }
    if (!config) {
        throw std::runtime_error("no NAT64 configuration was in force at " + iso8601(at));
    }
    if (config->mode == Nat64Mode::dynamic) {
        auto a = store_.trace(address, port, at);
        if (!a) {
            throw std::runtime_error("no subscriber held " + what + " at " + iso8601(at));
        }
        return {{"address", what},
                {"at", iso8601(at)},
                {"mode", "dynamic"},
                {"subscriber", to_string(a->subscriber)},
                {"account", a->account},
                {"public_address", to_string(a->public_address)},
                {"ports", std::to_string(a->first_port) + "-" + std::to_string(a->last_port)},
                {"from", iso8601(a->valid_from)},
                {"until", a->valid_until ? nlohmann::json(iso8601(*a->valid_until)) : nullptr}};
    }
    // RFC 7422: the configuration alone says who held the port.
    auto m = DeterministicMap(*config).trace(address, port);
    if (!m) {
        throw std::runtime_error(what + " was in no subscriber's block at " + iso8601(at));
    }
    return {
        {"address", what},
        {"at", iso8601(at)},
        {"mode", "deterministic"},
        {"subscriber", to_string(m->subscriber)},
        {"account", account_of(m->subscriber)},
        {"public_address", to_string(m->block.address)},
        {"ports", std::to_string(m->block.first_port) + "-" + std::to_string(m->block.last_port)},
        {"from", iso8601(from)},
        {"until", until ? nlohmann::json(iso8601(*until)) : nullptr}};
}

uint64_t Nat64Ledger::prune() {
    return store_.prune(wall_now() - int64_t{state_.retention_days} * 86400);
}

}  // namespace xlat64
