// xlat64d once its configuration is valid: adopts or builds the kernel state, then serves the
// control socket and handles signals until told to stop. Stopping leaves the translator in the
// kernel (hitless restarts); only `xlat64d --teardown` removes it.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "daemon/backend.h"
#include "daemon/control_server.h"
#include "daemon/event_loop.h"
#include "daemon/reconciler.h"
#include "daemon/store.h"
#include "netlink/link_monitor.h"
#include "netlink/unique_fd.h"

namespace xlat64 {

class Nat64Ledger;
class Nat64Runtime;

class Daemon {
  public:
    // Loads the translator (reusing pinned maps), reconciles, opens the control socket.
    // SIGTERM, SIGINT and SIGHUP must already be blocked (block_daemon_signals()).
    Daemon(Config config, std::filesystem::path config_path);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Serves until SIGTERM or SIGINT; returns the exit status.
    int run();

    // Re-reads the configuration file, validates it and applies only the difference. Returns
    // the number of kernel changes made. Throws ReloadError (already logged) when the running
    // configuration was kept: invalid file, a change that needs a restart, or a failed apply
    // that was rolled back.
    size_t reload(std::string_view requested_by);

  private:
    void on_signal();
    void start_watchdog();
    // OPEN: the store's open allocations, read for the reconcile just before. RESTORED_NS: the
    // reconcile has just re-created the store's leases in emptied maps, stamped with this time.
    void start_nat64(std::unique_ptr<Nat64Ledger> ledger, const std::vector<Allocation>& open,
                     std::optional<uint64_t> restored_ns = std::nullopt);
    std::unique_ptr<Nat64Ledger> make_ledger(const Config& config);
    Config effective(const Config& file);
    void reconcile_running();
    // The link watch: an ingress fast path interface appeared, went or was re-created (a PPP
    // session that reconnects). The reconciler decides what that means (attach, trust, detach);
    // the watch only says when to ask it.
    void on_link_events();
    void reconcile_for_links();
    // Why EVENTS call for a reconcile (none when they do not).
    std::vector<std::string> link_reconcile_reasons(const LinkEvents& events) const;
    // Remembers the indexes the configured ingress interfaces have now, so that an event about
    // one of them under another name (renamed away) is recognised.
    void note_ingress_ifindexes();
    nlohmann::json add_runtime_eam(const EamEntry& entry);
    nlohmann::json remove_runtime_eam(const Ipv4Prefix& ipv4);
    nlohmann::json eamt_list();
    void nat64_tick();
    Nat64Runtime& require_nat64();
    void notify_ready();
    Config read_config_for_reload() const;
    size_t apply_or_roll_back(const Config& next, const std::vector<RestoredLease>& leases);
    CommandTable commands();
    nlohmann::json status();
    nlohmann::json stats();
    nlohmann::json reload_result(std::string_view requested_by);

    Config config_;
    std::filesystem::path config_path_;
    std::chrono::system_clock::time_point started_at_;
    std::chrono::steady_clock::time_point started_steady_;
    EventLoop loop_;
    UniqueFd signals_;
    std::unique_ptr<LinkMonitor> links_;
    std::vector<int> ingress_ifindexes_;  // sorted (note_ingress_ifindexes)
    // The reasons gathered for the reconcile the link watch has scheduled, each once.
    std::vector<std::string> link_reasons_;
    bool link_reconcile_scheduled_ = false;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Reconciler> reconciler_;
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<Store> store_;
    std::unique_ptr<Nat64Ledger> ledger_;
    std::unique_ptr<Nat64Runtime> nat64_;
    // Shown in `systemctl status` (STATUS=) and `xlat64ctl status` until the next good reload.
    std::string last_reload_error_;
};

// What a reload refused or could not apply; what() is the operator-facing explanation.
class ReloadError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Blocks the signals the daemon reads from its signalfd, so none is lost or kills it mid-startup.
void block_daemon_signals();

// Why `next` cannot be applied by a reload (SIGHUP), or nullopt when it can.
std::optional<std::string> restart_only_change(const Config& running, const Config& next);

}  // namespace xlat64
