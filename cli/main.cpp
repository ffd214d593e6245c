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

struct Options {
    std::string socket = "/run/xlat64/control.sock";
    bool json = false;
    bool all = false;
};

int run(const Options& options, const std::string& command) {
    ControlClient client(options.socket, kTimeout);
    nlohmann::json result = client.call(command);
    if (options.json) {
        std::cout << result.dump(2) << "\n";
    } else if (command == "status") {
        std::cout << format_status(result);
    } else {
        std::cout << format_stats(result, options.all);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"xlat64ctl: query the xlat64 translator daemon (xlat64d)"};
    Options options;
    app.add_option("-s,--socket", options.socket, "control socket of xlat64d")
        ->capture_default_str();
    app.add_flag("--json", options.json, "print the daemon's answer as JSON");
    app.set_version_flag("--version", XLAT64_VERSION);
    app.require_subcommand(1);
    // Options of the program also after the command: `xlat64ctl stats --json`.
    app.fallthrough();
    auto* status = app.add_subcommand("status", "daemon, device, program and table summary");
    auto* stats = app.add_subcommand("stats", "translation and drop counters");
    stats->add_flag("-a,--all", options.all, "also list drop counters that are zero");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; usage errors 2, apart from 1 (the request failed).
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        return run(options, status->parsed() ? "status" : "stats");
    } catch (const std::exception& e) {
        std::cerr << "xlat64ctl: " << e.what() << "\n";
        return 1;
    }
}
