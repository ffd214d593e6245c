#include "daemon/daemon.h"

#include <net/if.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "daemon/bpf_backend.h"
#include "daemon/log.h"
#include "daemon/nat64_ledger.h"
#include "daemon/nat64_runtime.h"
#include "daemon/store.h"

#ifndef XLAT64_VERSION
#define XLAT64_VERSION "unknown"
#endif

namespace xlat64 {
namespace {

// When PLAN emptied the dynamic NAT64 maps and re-created the store's leases in them (a reboot),
// the lease time it gave them: the run-time's first sync then only looks for what the data path
// did since.
std::optional<uint64_t> restored_nat64_leases(const Plan& plan) {
    for (const Change& c : plan) {
        const auto* reset = std::get_if<change::ResetNat64State>(&c);
        if (reset && reset->config && reset->config->mode == Nat64Mode::dynamic) {
            return reset->leased_ns;
        }
    }
    return std::nullopt;
}

// The link watch waits this long after the first event before it reconciles, so that a burst
// (an interface created, renamed, brought up: several RTM_NEWLINK) costs one reconcile.
constexpr std::chrono::milliseconds kLinkSettleTime(200);
// At most this many events are named in the log line of one such reconcile.
constexpr size_t kLoggedLinkEvents = 8;

// LEDGER's open allocations (none without NAT64), read once for a reconcile and the sync after it.
Nat64Ledger::OpenAllocations open_allocations_of(Nat64Ledger* ledger) {
    return ledger ? ledger->restorable_leases() : Nat64Ledger::OpenAllocations{};
}

// Only the leases, for a reconcile that no new run-time follows: the rest is not kept meanwhile.
std::vector<RestoredLease> restorable_leases_of(Nat64Ledger* ledger) {
    return std::move(open_allocations_of(ledger).restorable);
}

sigset_t daemon_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

UniqueFd open_signalfd() {
    sigset_t set = daemon_signals();
    UniqueFd fd(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd) {
        throw std::system_error(errno, std::generic_category(), "signalfd");
    }
    return fd;
}

std::string iso8601_utc(std::chrono::system_clock::time_point when) {
    const time_t seconds = std::chrono::system_clock::to_time_t(when);
    tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

// systemd (Type=notify-reload) wants the monotonic time with RELOADING=1; older systemd ignores
// it.
void notify_reloading() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const unsigned long long usec =
        static_cast<unsigned long long>(now.tv_sec) * 1000000ULL + now.tv_nsec / 1000;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

std::string string_argument(const Request& request, const char* name) {
    auto it = request.body.find(name);
    if (it == request.body.end() || !it->is_string()) {
        throw std::runtime_error(request.command + " needs a \"" + name + "\" string");
    }
    return it->get<std::string>();
}

// The store in the state directory, which is created (mode 0700) when missing: systemd's
// StateDirectory= does that for the service; a hand-started daemon should not need a mkdir first.
Store open_store(const StateConfig& state) {
    std::error_code ec;
    // Only a directory made here gets its mode set: an existing one is the operator's.
    if (std::filesystem::create_directories(state.directory, ec)) {
        std::filesystem::permissions(state.directory, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::replace, ec);
    }
    return Store::open((state.directory / "state.db").string());
}

}  // namespace

void block_daemon_signals() {
    sigset_t set = daemon_signals();
    if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0) {
        throw std::system_error(errno, std::generic_category(), "sigprocmask");
    }
    // Control clients may vanish mid-answer; send() uses MSG_NOSIGNAL, this covers the rest.
    signal(SIGPIPE, SIG_IGN);
}

std::optional<std::string> restart_only_change(const Config& running, const Config& next) {
    if (next.device.name != running.device.name) {
        return "device.name changed (" + running.device.name + " -> " + next.device.name +
               "): stop xlat64d, run `xlat64d --teardown` with the old configuration, then start "
               "it with the new one";
    }
    if (next.bpf_pin_dir != running.bpf_pin_dir) {
        return "bpf.pin_dir changed (" + running.bpf_pin_dir.string() + " -> " +
               next.bpf_pin_dir.string() +
               "): the maps stay pinned where they are until a "
               "teardown and restart";
    }
    if (next.state.directory != running.state.directory) {
        return "state.directory changed (" + running.state.directory.string() + " -> " +
               next.state.directory.string() + "): restart xlat64d to open the other store";
    }
    if (next.control_socket != running.control_socket) {
        return "control.socket changed (" + running.control_socket.string() + " -> " +
               next.control_socket.string() + "): restart xlat64d to move it";
    }
    return std::nullopt;
}

Daemon::Daemon(Config config, std::filesystem::path config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      started_at_(std::chrono::system_clock::now()),
      started_steady_(std::chrono::steady_clock::now()),
      signals_(open_signalfd()) {
    // The store first: a store that cannot be used stops the start before the kernel is touched.
    store_ = std::make_unique<Store>(open_store(config_.state));
    backend_ = std::make_unique<BpfBackend>(config_.device.name, config_.bpf_pin_dir);
    reconciler_ = std::make_unique<Reconciler>(*backend_);
    // Subscribed before the first reconcile: an interface that appears after that reconcile has
    // read the interfaces is in the socket's queue, not lost.
    links_ = std::make_unique<LinkMonitor>();
    auto ledger = make_ledger(config_);
    Nat64Ledger::OpenAllocations open = open_allocations_of(ledger.get());
    const Plan plan = reconciler_->reconcile(effective(config_), open.restorable);
    open.restorable = {};
    note_ingress_ifindexes();
    start_nat64(std::move(ledger), open.all, restored_nat64_leases(plan));
    control_ = std::make_unique<ControlServer>(loop_, config_.control_socket, commands());
    loop_.watch(signals_.get(), POLLIN, [this](short) { on_signal(); });
    loop_.watch(links_->fd(), POLLIN, [this](short) { on_link_events(); });
    start_watchdog();
    loop_.every(std::chrono::seconds(1), [this] { nat64_tick(); });
}

Daemon::~Daemon() = default;

int Daemon::run() {
    log_info("ready: translating via " + config_.device.name + ", control socket " +
             config_.control_socket.string());
    // Only now is the kernel programmed and the socket answering: `systemctl start` returns
    // here, so whatever runs after it finds a working translator.
    notify_ready();
    loop_.run();
    sd_notify(0, "STOPPING=1\nSTATUS=stopping; the translator stays in the kernel");
    log_info("stopping; the translator stays in the kernel (xlat64d --teardown removes it)");
    control_.reset();  // removes the socket file
    return 0;
}

// systemd sets WATCHDOG_USEC when the unit has WatchdogSec=. Pinging from the event loop at
// half that period proves the loop still turns: a daemon stuck in a netlink or bpf() call is
// restarted, and the restart is hitless because the kernel state stays.
void Daemon::start_watchdog() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return;
    }
    const auto period = std::chrono::milliseconds(usec / 2000);
    log_info("watchdog: pinging systemd every " + std::to_string(period.count()) + " ms");
    loop_.every(period, [] { sd_notify(0, "WATCHDOG=1"); });
}

// The NAT64 run-time for the running configuration (or none): on start-up and when a reload
// changed the nat64 section.
void Daemon::start_nat64(std::unique_ptr<Nat64Ledger> ledger, const std::vector<Allocation>& open,
                         std::optional<uint64_t> restored_ns) {
    if (nat64_) {
        loop_.unwatch(nat64_->events_fd());
        nat64_.reset();
    }
    ledger_ = std::move(ledger);
    if (!ledger_) {
        return;
    }
    nat64_ = backend_->nat64_runtime(*ledger_);
    if (!nat64_) {
        return;
    }
    loop_.watch(nat64_->events_fd(), POLLIN, [this](short) { nat64_->drain_events(); });
    // Allocations made while no daemon ran are in the maps; their events may have been lost.
    nat64_->drain_events();
    nat64_->sync_with_store(open, restored_ns);
}

// FILE's configuration plus the EAM entries added at run time (xlat64ctl eamt add), which the
// store keeps across restarts and reboots. An entry the file now maps itself (or that conflicts
// with it) is left out, and said so: the file wins.
Config Daemon::effective(const Config& file) {
    Config config = file;
    for (const StoredEam& stored : store_->eams()) {
        if (auto conflict = eam_conflict(config, stored.entry)) {
            log_warning("eamt: the runtime entry " + to_string(stored.entry.ipv4) + " <-> " +
                        to_string(stored.entry.ipv6) +
                        " is not applied, the configuration file has the say: " + *conflict);
            continue;
        }
        config.eamt.push_back(stored.entry);
    }
    return config;
}

void Daemon::reconcile_running() {
    reconciler_->reconcile(effective(config_), restorable_leases_of(ledger_.get()));
    note_ingress_ifindexes();
}

void Daemon::note_ingress_ifindexes() {
    ingress_ifindexes_.clear();
    for (const std::string& name : config_.ingress_interfaces) {
        if (const unsigned ifindex = if_nametoindex(name.c_str()); ifindex != 0) {
            ingress_ifindexes_.push_back(static_cast<int>(ifindex));
        }
    }
    std::sort(ingress_ifindexes_.begin(), ingress_ifindexes_.end());
}

// Each relevant event once (a burst repeats RTM_NEWLINK), and the overrun. Without ingress
// interfaces nothing is: a router whose PPP sessions come and go by the thousand must not
// reconcile (dumping routes and tables) for them.
std::vector<std::string> Daemon::link_reconcile_reasons(const LinkEvents& events) const {
    std::vector<std::string> out;
    const auto& listed = config_.ingress_interfaces;
    if (listed.empty()) {
        return out;
    }
    for (const LinkEvent& e : events.events) {
        const bool relevant =
            std::find(listed.begin(), listed.end(), e.name) != listed.end() ||
            std::binary_search(ingress_ifindexes_.begin(), ingress_ifindexes_.end(), e.ifindex);
        if (relevant) {
            out.push_back(e.name + " " + to_string(e.kind) + " (ifindex " +
                          std::to_string(e.ifindex) + ")");
        }
    }
    if (events.overrun) {
        out.push_back("link events lost (socket receive buffer overrun, ENOBUFS)");
    }
    return out;
}

// Reads the events; the first relevant one schedules a reconcile a moment later, and whatever
// else arrives meanwhile is handled by that same reconcile.
void Daemon::on_link_events() {
    std::vector<std::string> reasons;
    try {
        reasons = link_reconcile_reasons(links_->drain());
    } catch (const std::exception& e) {
        // Not expected from a netlink socket; reconciling is the safe answer to not knowing.
        reasons.push_back(std::string("reading link events failed (") + e.what() + ")");
    }
    for (std::string& reason : reasons) {
        if (std::find(link_reasons_.begin(), link_reasons_.end(), reason) == link_reasons_.end()) {
            link_reasons_.push_back(std::move(reason));
        }
    }
    if (!link_reasons_.empty() && !link_reconcile_scheduled_) {
        link_reconcile_scheduled_ = true;
        loop_.after(kLinkSettleTime, [this] { reconcile_for_links(); });
    }
}

void Daemon::reconcile_for_links() {
    on_link_events();  // what arrived during the wait is covered by this reconcile too
    link_reconcile_scheduled_ = false;
    std::string why;
    for (size_t i = 0; i < link_reasons_.size() && i < kLoggedLinkEvents; ++i) {
        why += (why.empty() ? "" : ", ") + link_reasons_[i];
    }
    if (link_reasons_.size() > kLoggedLinkEvents) {
        why += " and " + std::to_string(link_reasons_.size() - kLoggedLinkEvents) + " more";
    }
    link_reasons_.clear();
    if (why.empty()) {
        return;
    }
    log_info("link watch: reconciling the running configuration: " + why);
    try {
        reconcile_running();
    } catch (const std::exception& e) {
        // The kernel stays as the failed plan left it; the next event or reload tries again.
        // Fail-closed all the same: an interface is trusted only once its program is attached.
        log_error(std::string("link watch: ") + e.what());
        note_ingress_ifindexes();
    }
}

// xlat64ctl eamt add: committed to the store first, then applied; if applying fails the entry is
// taken out of the store again and the kernel reconciled back.
nlohmann::json Daemon::add_runtime_eam(const EamEntry& entry) {
    if (auto conflict = eam_conflict(effective(config_), entry)) {
        throw std::runtime_error(*conflict);
    }
    store_->add_eam(entry, static_cast<int64_t>(time(nullptr)));
    try {
        reconcile_running();
    } catch (const std::exception& e) {
        store_->remove_eam(entry.ipv4);
        reconcile_running();
        throw std::runtime_error(std::string("applying the entry failed, it was not added: ") +
                                 e.what());
    }
    log_info("eamt: added " + to_string(entry.ipv4) + " <-> " + to_string(entry.ipv6) +
             " (runtime, kept in the store)");
    return {{"ipv4", to_string(entry.ipv4)}, {"ipv6", to_string(entry.ipv6)}, {"added", true}};
}

nlohmann::json Daemon::remove_runtime_eam(const Ipv4Prefix& ipv4) {
    for (const EamEntry& e : config_.eamt) {
        if (e.ipv4 == ipv4) {
            throw std::runtime_error(to_string(ipv4) + " is mapped by the configuration file " +
                                     config_path_.string() + "; remove it there and reload");
        }
    }
    if (!store_->remove_eam(ipv4)) {
        throw std::runtime_error("no runtime EAM entry for " + to_string(ipv4));
    }
    reconcile_running();
    log_info("eamt: removed the runtime entry for " + to_string(ipv4));
    return {{"ipv4", to_string(ipv4)}, {"removed", true}};
}

nlohmann::json Daemon::eamt_list() {
    nlohmann::json out = nlohmann::json::array();
    for (const EamEntry& e : config_.eamt) {
        out.push_back(
            {{"ipv4", to_string(e.ipv4)}, {"ipv6", to_string(e.ipv6)}, {"origin", "file"}});
    }
    const Config applied = effective(config_);
    for (const StoredEam& stored : store_->eams()) {
        const bool active =
            std::find(applied.eamt.begin(), applied.eamt.end(), stored.entry) != applied.eamt.end();
        out.push_back({{"ipv4", to_string(stored.entry.ipv4)},
                       {"ipv6", to_string(stored.entry.ipv6)},
                       {"origin", active ? "runtime" : "runtime (not applied: the file conflicts)"},
                       {"added", iso8601(stored.created)}});
    }
    return out;
}

// The ledger for CONFIG's nat64 section (nullptr without one), its configuration recorded in the
// store's history so that traces of the past use the configuration of the time.
std::unique_ptr<Nat64Ledger> Daemon::make_ledger(const Config& config) {
    if (!config.nat64) {
        return nullptr;
    }
    auto ledger = std::make_unique<Nat64Ledger>(*store_, *config.nat64, config.state);
    ledger->record_configuration();
    return ledger;
}

void Daemon::nat64_tick() {
    if (!nat64_) {
        return;
    }
    try {
        nat64_->drain_events();
        nat64_->tick();
    } catch (const std::exception& e) {
        // Expiry retries on the next tick; translation does not depend on it.
        log_warning(std::string("nat64: ") + e.what());
    }
}

Nat64Runtime& Daemon::require_nat64() {
    if (!nat64_) {
        throw std::runtime_error("stateful NAT64 is not configured (no nat64: section)");
    }
    return *nat64_;
}

// READY=1 (after start-up or a reload, which systemd 252 then reports as finished) with the
// STATUS= line that `systemctl status` shows.
void Daemon::notify_ready() {
    std::string text = "translating via " + config_.device.name + ": pool6 " +
                       (config_.pool6 ? to_string(*config_.pool6) : std::string("none")) + ", " +
                       std::to_string(config_.eamt.size()) + " EAM entries";
    if (!last_reload_error_.empty()) {
        text += "; last reload failed, running configuration kept (see the journal)";
    }
    sd_notify(0, ("READY=1\nSTATUS=" + text).c_str());
}

void Daemon::on_signal() {
    signalfd_siginfo info{};
    while (read(signals_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
        if (info.ssi_signo != SIGHUP) {
            loop_.stop();
            continue;
        }
        try {
            reload("SIGHUP");
        } catch (const ReloadError&) {
            // Logged by reload(); the daemon goes on with the running configuration.
        }
    }
}

// The reconciler applies its plan change by change. If one fails, the previous configuration
// is reconciled back so the kernel never stays half-way between the two files.
size_t Daemon::apply_or_roll_back(const Config& next, const std::vector<RestoredLease>& leases) {
    try {
        return reconciler_->reconcile(effective(next), leases).size();
    } catch (const std::exception& e) {
        const std::string failure = e.what();
        try {
            reconcile_running();
        } catch (const std::exception& rollback) {
            throw ReloadError("applying " + config_path_.string() + " failed: " + failure +
                              "; rolling back to the running configuration failed too: " +
                              rollback.what() + "; the kernel may be partly updated");
        }
        throw ReloadError("applying " + config_path_.string() + " failed: " + failure +
                          "; rolled back, the running configuration is kept");
    }
}

// The file, parsed and validated, and checked against what only a restart can change; throws
// ReloadError before anything in the kernel is touched.
Config Daemon::read_config_for_reload() const {
    Config next;
    try {
        next = load_config_file(config_path_);
    } catch (const ConfigError& e) {
        throw ReloadError(config_path_.string() +
                          " is invalid; the running configuration is kept:\n" + e.what());
    } catch (const std::exception& e) {
        throw ReloadError("cannot read " + config_path_.string() + ": " + e.what() +
                          "; the running configuration is kept");
    }
    if (auto reason = restart_only_change(config_, next)) {
        throw ReloadError(*reason + "; the running configuration is kept");
    }
    return next;
}

size_t Daemon::reload(std::string_view requested_by) {
    notify_reloading();
    log_info("reload (" + std::string(requested_by) + "): reading " + config_path_.string());
    try {
        Config next = read_config_for_reload();
        if (nat64_) {
            nat64_->drain_events();  // every allocation so far recorded before anything changes
        }
        const bool nat64_changed = next.nat64 != config_.nat64 || next.state != config_.state;
        auto ledger = nat64_changed ? make_ledger(next) : nullptr;
        Nat64Ledger::OpenAllocations open;
        if (ledger) {
            open = ledger->restorable_leases();  // its run-time's first sync takes them all
        } else {
            open.restorable = restorable_leases_of(ledger_.get());
        }
        const size_t changes = apply_or_roll_back(next, open.restorable);
        config_ = std::move(next);
        note_ingress_ifindexes();
        if (nat64_changed) {
            start_nat64(std::move(ledger), open.all);
        }
        last_reload_error_.clear();
        log_info("reload: done, " + std::to_string(changes) +
                 (changes == 1 ? " change applied" : " changes applied"));
        notify_ready();
        return changes;
    } catch (const ReloadError& e) {
        last_reload_error_ = e.what();
        log_error(std::string("reload failed: ") + e.what());
        notify_ready();
        throw;
    }
}

nlohmann::json Daemon::reload_result(std::string_view requested_by) {
    const size_t changes = reload(requested_by);
    return {{"config_file", config_path_.string()}, {"changes", changes}};
}

nlohmann::json Daemon::status() {
    nlohmann::json result = backend_->status();
    const auto uptime = std::chrono::steady_clock::now() - started_steady_;
    result["version"] = XLAT64_VERSION;
    result["pid"] = getpid();
    result["config_file"] = config_path_.string();
    result["started_at"] = iso8601_utc(started_at_);
    result["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(uptime).count();
    result["store"] = store_->path();
    if (config_.nat64) {
        const Nat64Config& n = *config_.nat64;
        result["nat64"] = {{"mode", n.mode == Nat64Mode::dynamic ? "dynamic" : "deterministic"},
                           {"public_addresses", nat64_public_address_count(n)},
                           {"blocks", nat64_block_count(n)},
                           {"block_size", n.block_size}};
    } else {
        result["nat64"] = nullptr;
    }
    result["ingress_interfaces"] = backend_->ingress_status(
        config_.ingress_interfaces,
        config_.nat64 ? std::optional<std::string>(config_.nat64->table) : std::nullopt);
    if (!last_reload_error_.empty()) {
        result["last_reload_error"] = last_reload_error_;
    }
    return result;
}

// The translator's counters, and the ingress fast path's when it is configured or has counted
// something (after the list was emptied, its counts stay until a teardown).
nlohmann::json Daemon::stats() {
    std::vector<Counter> counters = backend_->counters();
    if (nat64_) {
        if (auto spoofed = nat64_->spoofed_source_counter()) {
            counters.push_back(std::move(*spoofed));
        }
    }
    nlohmann::json result = stats_result(counters);
    const std::vector<Counter> ingress = backend_->ingress_counters();
    const bool counted = std::any_of(ingress.begin(), ingress.end(),
                                     [](const Counter& c) { return c.packets != 0; });
    if (!config_.ingress_interfaces.empty() || counted) {
        nlohmann::json list = nlohmann::json::array();
        for (const Counter& c : ingress) {
            list.push_back(
                {{"name", c.name}, {"packets", c.packets}, {"bytes", c.bytes}, {"help", c.help}});
        }
        result["ingress"] = std::move(list);
    }
    return result;
}

CommandTable Daemon::commands() {
    CommandTable table;
    table["status"] = Command{Access::read, [this](const Request&) { return status(); }};
    table["stats"] = Command{Access::read, [this](const Request&) { return stats(); }};
    // A change to the kernel, so root only; the same path as SIGHUP, but the caller gets the
    // outcome (ExecReload= uses it, so `systemctl reload` fails when the file is invalid).
    table["pool"] =
        Command{Access::read, [this](const Request&) { return require_nat64().pool(); }};
    table["subscriber-list"] =
        Command{Access::read, [this](const Request&) { return require_nat64().subscribers(); }};
    table["subscriber-show"] =
        Command{Access::read, [this](const Request& r) {
                    return require_nat64().subscriber(string_argument(r, "prefix"));
                }};
    table["trace"] = Command{Access::read, [this](const Request& r) {
                                 std::optional<int64_t> at;
                                 if (auto it = r.body.find("at");
                                     it != r.body.end() && it->is_number_integer()) {
                                     at = it->get<int64_t>();
                                 }
                                 return require_nat64().trace(string_argument(r, "address"), at);
                             }};
    table["subscriber-add"] = Command{
        Access::admin, [this](const Request& r) {
            auto it = r.body.find("account");
            const std::string account =
                it != r.body.end() && it->is_string() ? it->get<std::string>() : std::string();
            return require_nat64().add_subscriber(string_argument(r, "prefix"), account);
        }};
    // Bulk provisioning: one chunk of `xlat64ctl subscriber import` per request.
    table["subscriber-import"] = Command{Access::admin, [this](const Request& r) {
                                             Nat64Runtime::ImportRequest request;
                                             request.text = string_argument(r, "subscribers");
                                             request.check = r.body.value("check", false);
                                             request.count_free = r.body.value("count_free", false);
                                             request.count_unleased =
                                                 r.body.value("count_unleased", false);
                                             request.pipelined = r.body.value("pipelined", false);
                                             return require_nat64().import_subscribers(request);
                                         }};
    table["subscriber-del"] =
        Command{Access::admin, [this](const Request& r) {
                    return require_nat64().remove_subscriber(string_argument(r, "prefix"));
                }};
    table["eamt-list"] = Command{Access::read, [this](const Request&) { return eamt_list(); }};
    table["eamt-add"] =
        Command{Access::admin, [this](const Request& r) {
                    auto v4 = parse_ipv4_prefix(string_argument(r, "ipv4"));
                    auto v6 = parse_ipv6_prefix(string_argument(r, "ipv6"));
                    if (!v4 || !v6) {
                        throw std::runtime_error(
                            "eamt add needs an IPv4 prefix and an IPv6 prefix, e.g. "
                            "192.0.2.0/24 2001:db8:2::/120");
                    }
                    return add_runtime_eam(EamEntry{*v4, *v6});
                }};
    table["eamt-del"] =
        Command{Access::admin, [this](const Request& r) {
                    auto v4 = parse_ipv4_prefix(string_argument(r, "ipv4"));
                    if (!v4) {
                        throw std::runtime_error(
                            "eamt del needs the entry's IPv4 prefix, e.g. 192.0.2.0/24");
                    }
                    return remove_runtime_eam(*v4);
                }};
    table["reload"] = Command{Access::admin,
                              [this](const Request&) { return reload_result("xlat64ctl reload"); }};
    return table;
}

}  // namespace xlat64
