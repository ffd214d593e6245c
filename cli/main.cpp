// xlat64ctl: queries the running xlat64d over its control socket.
#include <CLI/CLI.hpp>

#include <time.h>

#include <chrono>
#include <iostream>

#include "cli/format.h"
#include "cli/import.h"
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
    std::string subscriber;   // subscriber show/add/del PREFIX
    std::string account;      // subscriber add --id
    std::string address;      // trace ADDRESS:PORT
    std::string at;           // trace --at
    std::string eam_ipv4;     // eamt add/del
    std::string eam_ipv6;     // eamt add
    std::string import_file;  // subscriber import FILE
};

// --at: Unix seconds, or an ISO 8601 UTC time (2026-11-22T13:41:16Z, seconds optional).
int64_t parse_time(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
        return std::stoll(text);
    }
    tm t{};
    const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
    if (!end) {
        end = strptime(text.c_str(), "%Y-%m-%dT%H:%M", &t);
    }
    if (!end || (*end != '\0' && std::string(end) != "Z")) {
        throw CLI::ValidationError(
            "--at", "expected Unix seconds or YYYY-MM-DDTHH:MM[:SS]Z (UTC), got " + text);
    }
    return static_cast<int64_t>(timegm(&t));
}

// The daemon's command for the CLI's (sub)command, its arguments and how to print its answer.
struct Call {
    std::string command;
    nlohmann::json arguments;
    std::string (*format)(const nlohmann::json&);
};

Call call_for(const Options& options, const std::string& command, const std::string& sub) {
    if (command == "status") {
        return {"status", {}, format_status};
    }
    if (command == "reload") {
        return {"reload", {}, format_reload};
    }
    if (command == "pool") {
        return {"pool", {}, format_pool};
    }
    if (command == "subscriber" && sub == "show") {
        return {"subscriber-show", {{"prefix", options.subscriber}}, format_subscriber};
    }
    if (command == "subscriber" && sub == "add") {
        return {"subscriber-add",
                {{"prefix", options.subscriber}, {"account", options.account}},
                format_subscriber_change};
    }
    if (command == "subscriber" && sub == "del") {
        return {"subscriber-del", {{"prefix", options.subscriber}}, format_subscriber_change};
    }
    if (command == "eamt" && sub == "add") {
        return {"eamt-add",
                {{"ipv4", options.eam_ipv4}, {"ipv6", options.eam_ipv6}},
                format_eamt_change};
    }
    if (command == "eamt" && sub == "del") {
        return {"eamt-del", {{"ipv4", options.eam_ipv4}}, format_eamt_change};
    }
    if (command == "eamt") {
        return {"eamt-list", {}, format_eamt};
    }
    if (command == "trace") {
        nlohmann::json args = {{"address", options.address}};
        if (!options.at.empty()) {
            args["at"] = parse_time(options.at);
        }
        return {"trace", args, format_trace};
    }
    if (command == "subscriber") {
        return {"subscriber-list", {}, format_subscribers};
    }
    return {"stats", {}, nullptr};
}

int run(const Options& options, const std::string& command, const std::string& sub) {
    if (command == "subscriber" && sub == "import") {
        return run_import({options.socket, options.import_file, options.json, kReloadTimeout});
    }
    const Call call = call_for(options, command, sub);
    ControlClient client(options.socket, command == "reload" ? kReloadTimeout : kTimeout);
    nlohmann::json result = client.call(call.command, call.arguments);
    if (options.json) {
        std::cout << result.dump(2) << "\n";
    } else if (call.format) {
        std::cout << call.format(result);
    } else {
        std::cout << format_stats(result, options.all);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "xlat64ctl: query and reload the xlat64 translator daemon (xlat64d).\n"
        "Reading (status, stats, pool, subscriber list/show, trace) needs root or membership in "
        "group xlat64; "
        "reload needs root.\n"
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
    app.add_subcommand("pool",
                       "stateful NAT64: public addresses, port blocks used and free, "
                       "sessions per protocol");
    auto* subscriber = app.add_subcommand("subscriber", "stateful NAT64 subscribers");
    subscriber->require_subcommand(1);
    subscriber->fallthrough();
    subscriber->add_subcommand("list",
                               "subscribers holding a block: block, public address, "
                               "ports, hosts, sessions");
    auto* show = subscriber->add_subcommand(
        "show",
        "one subscriber: its internal block, public address, port block, active hosts "
        "and conntrack entries");
    show->add_option("prefix", options.subscriber,
                     "the subscriber's IPv6 prefix, or any address inside it")
        ->required();
    show->fallthrough();
    auto* add = subscriber->add_subcommand(
        "add",
        "provision a subscriber with its account id (root only); in dynamic mode it gets "
        "its port block now, recorded in the store");
    add->add_option("prefix", options.subscriber, "the subscriber's IPv6 prefix")->required();
    add->add_option("--id", options.account, "the subscriber's account id (RADIUS User-Name, ...)")
        ->required();
    add->fallthrough();
    auto* import = subscriber->add_subcommand(
        "import",
        "provision many subscribers from FILE (root only): lines 'PREFIX ACCOUNT', '#' comments. "
        "The whole file is checked first (nothing changes if any line is wrong); then it is "
        "imported in chunks of 65,536, each committed at once. Idempotent: subscribers already "
        "provisioned keep their block (a different account id is updated)");
    import->add_option("file", options.import_file, "the file, or - for standard input")
        ->required();
    import->fallthrough();
    auto* del = subscriber->add_subcommand(
        "del", "remove a subscriber (root only); in dynamic mode its block is returned");
    del->add_option("prefix", options.subscriber, "the subscriber's IPv6 prefix")->required();
    del->fallthrough();
    auto* eamt = app.add_subcommand("eamt", "explicit address mappings (RFC 7757)");
    eamt->require_subcommand(1);
    eamt->fallthrough();
    eamt->add_subcommand("list", "the file's entries and those added at run time");
    auto* eam_add = eamt->add_subcommand(
        "add", "add an entry at run time (root only), kept in the store across restarts");
    eam_add->add_option("ipv4", options.eam_ipv4, "IPv4 prefix, e.g. 192.0.2.0/24")->required();
    eam_add->add_option("ipv6", options.eam_ipv6, "IPv6 prefix, e.g. 2001:db8:2::/120")->required();
    eam_add->fallthrough();
    auto* eam_del = eamt->add_subcommand("del", "remove an entry added at run time (root only)");
    eam_del->add_option("ipv4", options.eam_ipv4, "its IPv4 prefix")->required();
    eam_del->fallthrough();
    auto* trace = app.add_subcommand(
        "trace",
        "who held a public IPv4 address and port: subscriber, account id and the "
        "allocation interval, from the store, now or at --at");
    trace->add_option("address", options.address, "PUBLIC-IPV4:PORT, e.g. 203.0.113.5:40123")
        ->required();
    trace->add_option("--at", options.at, "a past time: Unix seconds or YYYY-MM-DDTHH:MM:SSZ");
    trace->fallthrough();
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
        CLI::App* command = app.get_subcommands().front();
        const auto subs = command->get_subcommands();
        return run(options, command->get_name(), subs.empty() ? "" : subs.front()->get_name());
    } catch (const std::exception& e) {
        std::cerr << "xlat64ctl: " << e.what() << "\n";
        return 1;
    }
}
