// The control protocol between xlat64ctl and xlat64d, over a Unix stream socket: one JSON object
// per line each way.
//   request:  {"command":"status"}            (more keys for commands that take arguments)
//   response: {"ok":true,"result":{...}}  or  {"ok":false,"error":"..."}
// Requests are answered in order. Pure and header-only: the framing, dispatch and access rules
// are unit-tested directly (test/unit/test_control_protocol.cpp).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/counter.h"

namespace xlat64 {

// A request line longer than this is refused and the connection closed: it is garbage or an
// attack, and the daemon must not buffer without bound.
inline constexpr size_t kMaxRequestBytes = 16 * 1024;
// Root's requests may be larger: `xlat64ctl subscriber import` sends its file in chunks of a few
// MB (fewer chunks, fewer commits), and root is trusted with the daemon's memory anyway.
inline constexpr size_t kMaxAdminRequestBytes = 16 << 20;

class ProtocolError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Serialises without throwing on invalid UTF-8 that may come from a peer (echoed in errors).
inline std::string to_line(const nlohmann::json& message) {
    return message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

inline std::string ok_response(nlohmann::json result) {
    return to_line({{"ok", true}, {"result", std::move(result)}});
}

inline std::string error_response(std::string_view message) {
    return to_line({{"ok", false}, {"error", std::string(message)}});
}

inline std::string make_request(std::string_view command) {
    return to_line({{"command", std::string(command)}});
}

struct Request {
    std::string command;
    nlohmann::json body;  // the whole request object
};

inline Request parse_request(std::string_view line) {
    nlohmann::json body = nlohmann::json::parse(line, nullptr, false);
    if (body.is_discarded()) {
        throw ProtocolError("request is not valid JSON");
    }
    if (!body.is_object()) {
        throw ProtocolError("request must be a JSON object");
    }
    auto command = body.find("command");
    if (command == body.end() || !command->is_string()) {
        throw ProtocolError("request needs a \"command\" string");
    }
    return Request{command->get<std::string>(), std::move(body)};
}

struct Response {
    bool ok = false;
    nlohmann::json result;
    std::string error;
};

inline Response parse_response(std::string_view line) {
    nlohmann::json body = nlohmann::json::parse(line, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("ok") ||
        !body["ok"].is_boolean()) {
        throw ProtocolError("malformed response from xlat64d");
    }
    Response response;
    response.ok = body["ok"].get<bool>();
    if (response.ok) {
        response.result = body.value("result", nlohmann::json::object());
    } else {
        auto error = body.find("error");
        response.error = error != body.end() && error->is_string() ? error->get<std::string>()
                                                                   : "unspecified error";
    }
    return response;
}

// Splits a byte stream into lines, refusing any line longer than the bound.
class LineBuffer {
  public:
    explicit LineBuffer(size_t max_line) : max_line_(max_line) {}

    // False when a line exceeds the bound; the buffer is then unusable (close the peer).
    bool append(std::string_view data) {
        for (char c : data) {
            current_line_ = c == '\n' ? 0 : current_line_ + 1;
            if (current_line_ > max_line_) {
                return false;
            }
        }
        data_.append(data);
        return true;
    }

    // The next complete line without its "\n" (or "\r\n").
    std::optional<std::string> next_line() {
        size_t end = data_.find('\n');
        if (end == std::string::npos) {
            return std::nullopt;
        }
        std::string line = data_.substr(0, end);
        data_.erase(0, end + 1);
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        return line;
    }

  private:
    size_t max_line_;
    size_t current_line_ = 0;
    std::string data_;
};

// What a peer may do: read-only commands for the xlat64 group, changes for root only.
enum class Access { none = 0, read = 1, admin = 2 };

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;  // supplementary groups
};

inline Access peer_access(const PeerCredentials& peer, std::optional<gid_t> xlat64_group) {
    if (peer.uid == 0) {
        return Access::admin;
    }
    if (xlat64_group &&
        (peer.gid == *xlat64_group ||
         std::find(peer.groups.begin(), peer.groups.end(), *xlat64_group) != peer.groups.end())) {
        return Access::read;
    }
    return Access::none;
}

inline size_t max_request_bytes(Access access) {
    return access == Access::admin ? kMaxAdminRequestBytes : kMaxRequestBytes;
}

struct Command {
    Access needs = Access::read;
    std::function<nlohmann::json(const Request&)> run;
};
// A new command (a change such as "reload") is one more entry, with needs = Access::admin.
using CommandTable = std::map<std::string, Command, std::less<>>;

struct Reply {
    std::string line;
    bool close = false;  // the peer misbehaved: close after sending the reply
};

inline std::string known_commands(const CommandTable& commands) {
    std::string names;
    for (const auto& [name, command] : commands) {
        names += (names.empty() ? "" : ", ") + name;
    }
    return names;
}

// Answers one request line. Protocol garbage closes the connection; a failing command only
// fails that request.
inline Reply dispatch(const CommandTable& commands, std::string_view line, Access access) {
    Request request;
    try {
        request = parse_request(line);
    } catch (const ProtocolError& e) {
        return Reply{error_response(e.what()), true};
    }
    auto command = commands.find(request.command);
    if (command == commands.end()) {
        return Reply{error_response("unknown command \"" + request.command +
                                    "\" (known: " + known_commands(commands) + ")")};
    }
    if (access < command->second.needs) {
        return Reply{error_response("permission denied: \"" + request.command + "\" needs " +
                                    (command->second.needs == Access::admin
                                         ? "root"
                                         : "root or membership in group xlat64"))};
    }
    try {
        return Reply{ok_response(command->second.run(request))};
    } catch (const std::exception& e) {
        return Reply{error_response(e.what())};
    }
}

inline nlohmann::json stats_result(const std::vector<Counter>& counters) {
    nlohmann::json list = nlohmann::json::array();
    uint64_t translated = 0;
    uint64_t dropped = 0;
    for (const Counter& c : counters) {
        list.push_back({{"name", c.name},
                        {"packets", c.packets},
                        {"bytes", c.bytes},
                        {"drop", c.drop},
                        {"event", c.event},
                        {"help", c.help}});
        if (!c.event) {
            (c.drop ? dropped : translated) += c.packets;
        }
    }
    return {{"counters", std::move(list)},
            {"totals", {{"translated", translated}, {"dropped", dropped}}}};
}

}  // namespace xlat64
