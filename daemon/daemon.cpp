#include "daemon/daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "daemon/bpf_backend.h"
#include "daemon/log.h"

#ifndef XLAT64_VERSION
#define XLAT64_VERSION "unknown"
#endif

namespace xlat64 {
namespace {

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
    backend_ = std::make_unique<BpfBackend>(config_.device.name, config_.bpf_pin_dir);
    reconciler_ = std::make_unique<Reconciler>(*backend_);
    reconciler_->reconcile(config_);
    control_ = std::make_unique<ControlServer>(loop_, config_.control_socket, commands());
    loop_.watch(signals_.get(), POLLIN, [this](short) { on_signal(); });
}

Daemon::~Daemon() = default;

int Daemon::run() {
    log_info("ready: translating via " + config_.device.name + ", control socket " +
             config_.control_socket.string());
    sd_notify(0, "READY=1\nSTATUS=translating");
    loop_.run();
    sd_notify(0, "STOPPING=1");
    log_info("stopping; the translator stays in the kernel (xlat64d --teardown removes it)");
    control_.reset();  // removes the socket file
    return 0;
}

void Daemon::on_signal() {
    signalfd_siginfo info{};
    while (read(signals_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
        if (info.ssi_signo == SIGHUP) {
            reload();
        } else {
            loop_.stop();
        }
    }
}

void Daemon::reload() {
    notify_reloading();
    log_info("reload: reading " + config_path_.string());
    try {
        Config next = load_config_file(config_path_);
        if (auto reason = restart_only_change(config_, next)) {
            log_error("reload: " + *reason + "; keeping the running configuration");
        } else {
            reconciler_->reconcile(next);
            config_ = std::move(next);
            log_info("reload: done");
        }
    } catch (const ConfigError& e) {
        log_error(std::string("reload: invalid configuration, keeping the running one:\n") +
                  e.what());
    } catch (const std::exception& e) {
        // Reconciling is state-based: the next reload or restart completes what failed here.
        log_error(std::string("reload: ") + e.what() +
                  "; the kernel may be partly updated, fix the cause and reload again");
    }
    sd_notify(0, "READY=1\nSTATUS=translating");
}

nlohmann::json Daemon::status() {
    nlohmann::json result = backend_->status();
    const auto uptime = std::chrono::steady_clock::now() - started_steady_;
    result["version"] = XLAT64_VERSION;
    result["pid"] = getpid();
    result["config_file"] = config_path_.string();
    result["started_at"] = iso8601_utc(started_at_);
    result["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(uptime).count();
    return result;
}

CommandTable Daemon::commands() {
    CommandTable table;
    table["status"] = Command{Access::read, [this](const Request&) { return status(); }};
    table["stats"] = Command{Access::read,
                             [this](const Request&) { return stats_result(backend_->counters()); }};
    return table;
}

}  // namespace xlat64
