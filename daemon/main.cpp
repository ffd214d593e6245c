// xlat64d: the xlat64 daemon. Runs in the foreground (systemd Type=notify); see DESIGN.md.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <optional>

#include "config/config.h"
#include "daemon/bpf_backend.h"
#include "daemon/control_server.h"
#include "daemon/daemon.h"
#include "daemon/log.h"

#ifndef XLAT64_VERSION
#define XLAT64_VERSION "unknown"
#endif

namespace fs = std::filesystem;
using namespace xlat64;

namespace {

constexpr const char* kDefaultConfig = "/etc/xlat64/xlat64.yaml";

// The issues of an invalid file go to stderr; nothing else happens before this succeeds.
std::optional<Config> load_config(const fs::path& path) {
    try {
        return load_config_file(path);
    } catch (const ConfigError& e) {
        log_error(e.what());
    } catch (const std::exception& e) {
        log_error(path.string() + ": " + e.what());
    }
    return std::nullopt;
}

// A file the daemon can run with: valid, and using nothing this release does not implement.
std::optional<Config> load_runnable_config(const fs::path& path) {
    std::optional<Config> config = load_config(path);
    if (!config) {
        return std::nullopt;
    }
    try {
    } catch (const ConfigError& e) {
        log_error(e.what());
        return std::nullopt;
    }
    return config;
}

int check(const fs::path& path) {
    if (!load_runnable_config(path)) {
        return 1;
    }
    std::cout << path.string() << ": configuration is valid\n";
    return 0;
}

bool refuse_if_running(const Config& config) {
    if (control_socket_answers(config.control_socket)) {
        log_error("xlat64d is already running (control socket " + config.control_socket.string() +
                  ")");
        return true;
    }
    return false;
}

// With the file gone (package purge), the defaults still name what a default install made; the
// alias check keeps this from touching anything else.
std::optional<Config> teardown_config(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        log_notice("teardown: " + path.string() + " does not exist; using the defaults");
        return Config{};
    }
    return load_config(path);
}

// The one place that removes xlat64 from the kernel: `xlat64d --teardown` by hand, and the
// package's prerm on remove/purge. Whatever xlat64 later creates in the kernel (the nftables
// table of stateful NAT64) must be removed here too, so uninstalling stays complete.
int teardown(const fs::path& path) {
    std::optional<Config> config = teardown_config(path);
    if (!config) {
        return 1;
    }
    if (control_socket_answers(config->control_socket)) {
        log_error("xlat64d is running (control socket " + config->control_socket.string() +
                  "); stop it before the teardown");
        return 1;
    }
    teardown_bpf_backend(*config);
    std::error_code ec;
    if (fs::is_socket(config->control_socket, ec) && fs::remove(config->control_socket, ec)) {
        log_info("teardown: removed stale control socket " + config->control_socket.string());
    }
    return 0;
}

int serve(const fs::path& path) {
    std::optional<Config> config = load_runnable_config(path);
    if (!config || refuse_if_running(*config)) {
        return 1;
    }
    block_daemon_signals();
    log_info(std::string("xlat64d ") + XLAT64_VERSION + " starting with " + path.string());
    Daemon daemon(std::move(*config), path);
    return daemon.run();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "xlat64d: IPv4/IPv6 translator (SIIT, RFC 7915/6052/7757) daemon.\n"
        "Runs in the foreground. Stopping it leaves the translator in the kernel;\n"
        "--teardown removes it."};
    std::string config_path = kDefaultConfig;
    bool check_only = false;
    bool teardown_only = false;
    app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
    auto* check_flag = app.add_flag("--check", check_only,
                                    "validate the configuration and exit (0 valid, 1 invalid)");
    app.add_flag("--teardown", teardown_only,
                 "remove the device, routes, program and map pins this configuration created, "
                 "then exit")
        ->excludes(check_flag);
    app.set_version_flag("--version", XLAT64_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; usage errors 2, apart from 1 (invalid configuration or
        // a failure).
        return app.exit(e) == 0 ? 0 : 2;
    }

    route_libbpf_log();
    try {
        // Absolute, so status and reload name the file regardless of the working directory.
        const fs::path path = fs::absolute(config_path);
        if (check_only) {
            return check(path);
        }
        if (teardown_only) {
            return teardown(path);
        }
        return serve(path);
    } catch (const std::exception& e) {
        log_error(e.what());
        return 1;
    }
}
