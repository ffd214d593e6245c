// xlat64ctl: queries the running xlat64d over its control socket.
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>

#include "cli/format.h"
#include "daemon/control_client.h"

#ifndef XLAT64_VERSION
#define XLAT64_VERSION "unknown"
#endif

using namespace xlat64;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
// A reload applies the whole difference before it answers; a large EAMT takes a while.
constexpr auto kReloadTimeout = std::chrono::seconds(300);

struct Options {
    std::string socket = "/run/xlat64/control.sock";
    bool json = false;
    bool all = false;
};

int run(const Options& options, const std::string& command) {
    ControlClient client(options.socket, command == "reload" ? kReloadTimeout : kTimeout);
    nlohmann::json result = client.call(command);
    if (options.json) {
        std::cout << result.dump(2) << "\n";
    } else if (command == "status") {
        std::cout << format_status(result);
    } else if (command == "reload") {
        std::cout << format_reload(result);
    } else {
        std::cout << format_stats(result, options.all);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "xlat64ctl: query and reload the xlat64 translator daemon (xlat64d).\n"
        "Reading (status, stats) needs root or membership in group xlat64; reload needs root.\n"
        "Exit status: 0 success, 1 the request failed (daemon not running, permission denied,\n"
        "reload refused), 2 usage error."};
    Options options;
    app.add_option("-s,--socket", options.socket, "control socket of xlat64d")
        ->capture_default_str();
    app.add_flag("--json", options.json, "print the daemon's answer as JSON");
    app.set_version_flag("--version", XLAT64_VERSION);
    app.require_subcommand(1);
    // Options of the program also after the command: `xlat64ctl stats --json`.
    app.fallthrough();
    app.add_subcommand("status", "daemon, device, program and table summary");
    auto* stats = app.add_subcommand("stats", "translation and drop counters");
    stats->add_flag("-a,--all", options.all, "also list drop counters that are zero");
    app.add_subcommand("reload",
                       "re-read and validate the daemon's configuration file and apply only the "
                       "difference; an invalid file changes nothing and is reported (root only)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; usage errors 2, apart from 1 (the request failed).
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        return run(options, app.get_subcommands().front()->get_name());
    } catch (const std::exception& e) {
        std::cerr << "xlat64ctl: " << e.what() << "\n";
        return 1;
    }
}
