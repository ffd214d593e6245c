// The control socket of xlat64d: a Unix stream socket (mode 0660, group xlat64 when it exists)
// answering the control protocol (control_protocol.h). Non-blocking and driven by the daemon's
// event loop; every client is bounded in request size, pending output, idle time and number, so
// a slow or hostile client cannot stall or exhaust the daemon.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "daemon/control_protocol.h"
#include "daemon/event_loop.h"
#include "netlink/unique_fd.h"

namespace xlat64 {

inline constexpr const char* kControlGroup = "xlat64";

class ControlServer {
  public:
    // Creates the parent directory (0755) if needed and replaces a stale socket file; the caller
    // has made sure no other daemon answers on `path`.
    ControlServer(EventLoop& loop, std::filesystem::path path, CommandTable commands);
    // Stops listening and removes the socket file.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::filesystem::path& path() const { return path_; }

  private:
    struct Client {
        UniqueFd fd;
        Access access = Access::none;
        LineBuffer input{kMaxRequestBytes};
        std::string output;
        bool closing = false;
        std::chrono::steady_clock::time_point last_activity;
    };

    void accept_clients();
    void on_client_event(int fd, short revents);
    bool read_input(Client& client);
    void answer_requests(Client& client);
    bool flush_output(Client& client);
    void update_interest(Client& client);
    void close_client(int fd);
    void expire_idle_clients();

    EventLoop& loop_;
    std::filesystem::path path_;
    CommandTable commands_;
    std::optional<gid_t> group_;
    UniqueFd listener_;
    std::map<int, std::unique_ptr<Client>> clients_;
};

// True when a process accepts connections on the socket at `path` (another xlat64d).
bool control_socket_answers(const std::filesystem::path& path);

}  // namespace xlat64
