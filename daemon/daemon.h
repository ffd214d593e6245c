// xlat64d once its configuration is valid: adopts or builds the kernel state, then serves the
// control socket and handles signals until told to stop. Stopping leaves the translator in the
// kernel (hitless restarts); only `xlat64d --teardown` removes it.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "daemon/backend.h"
#include "daemon/control_server.h"
#include "daemon/event_loop.h"
#include "daemon/reconciler.h"
#include "netlink/unique_fd.h"

namespace xlat64 {

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

  private:
    void on_signal();
    void reload();
    CommandTable commands();
    nlohmann::json status();

    Config config_;
    std::filesystem::path config_path_;
    std::chrono::system_clock::time_point started_at_;
    std::chrono::steady_clock::time_point started_steady_;
    EventLoop loop_;
    UniqueFd signals_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Reconciler> reconciler_;
    std::unique_ptr<ControlServer> control_;
};

// Blocks the signals the daemon reads from its signalfd, so none is lost or kills it mid-startup.
void block_daemon_signals();

// Why `next` cannot be applied by a reload (SIGHUP), or nullopt when it can.
std::optional<std::string> restart_only_change(const Config& running, const Config& next);

}  // namespace xlat64
